//! Chat templates: the model's (or `--chat-template`'s) Jinja source rendered with
//! minijinja, as transformers' `apply_chat_template` does.

use minijinja::{Environment, ErrorKind};
use serde_json::Value;

/// A compiled chat template and the special-token strings it may use.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
}

/// Why a template cannot be compiled or rendered.
#[derive(Debug, thiserror::Error)]
#[error("chat template: {0}")]
pub struct TemplateError(String);

impl ChatTemplate {
    /// Compiles `source`; `bos` and `eos` are the strings of the model's special
    /// tokens (empty when it has none).
    pub fn new(source: String, bos: String, eos: String) -> Result<ChatTemplate, TemplateError> {
        let mut env = Environment::new();
        // Hugging Face templates call Python string methods (`.strip()`, `.title()`).
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_template_owned("chat", source)
            .map_err(|e| TemplateError(e.to_string()))?;
        Ok(ChatTemplate { env, bos, eos })
    }

    /// Renders `messages` (OpenAI's `[{role, content}]`, content a string or a
    /// list of text parts) followed by the generation prompt.
    pub fn render(&self, messages: &[Value]) -> Result<String, TemplateError> {
        let tmpl = self
            .env
            .get_template("chat")
            .map_err(|e| TemplateError(e.to_string()))?;
        let ctx = minijinja::context! {
            messages => minijinja::Value::from_serialize(messages),
            add_generation_prompt => true,
            bos_token => self.bos.as_str(),
            eos_token => self.eos.as_str(),
        };
        tmpl.render(ctx).map_err(|e| {
            // A template's own raise_exception message is the useful part.
            let detail = e
                .detail()
                .map(str::to_string)
                .unwrap_or_else(|| e.to_string());
            TemplateError(detail)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TEMPLATE: &str = "{{ bos_token }}{% for m in messages %}\
        {% if m['role'] not in ['system', 'user', 'assistant'] %}\
        {{ raise_exception('unknown role ' + m['role']) }}{% endif %}\
        <{{ m['role'] }}>{{ m['content'] | trim }}{{ eos_token }}{% endfor %}\
        {% if add_generation_prompt %}<assistant>{% endif %}";

    #[test]
    fn renders_messages_and_the_generation_prompt() {
        let t = ChatTemplate::new(TEMPLATE.into(), "<s>".into(), "</s>".into()).unwrap();
        let out = t
            .render(&[json!({"role": "user", "content": " hi "})])
            .unwrap();
        assert_eq!(out, "<s><user>hi</s><assistant>");
    }

    #[test]
    fn raise_exception_becomes_an_error() {
        let t = ChatTemplate::new(TEMPLATE.into(), String::new(), String::new()).unwrap();
        let e = t
            .render(&[json!({"role": "tool", "content": "x"})])
            .unwrap_err();
        assert!(e.to_string().contains("unknown role tool"), "{e}");
    }

    #[test]
    fn python_string_methods_work() {
        let t = ChatTemplate::new(
            "{{ messages[0]['content'].strip().upper() }}".into(),
            String::new(),
            String::new(),
        )
        .unwrap();
        assert_eq!(
            t.render(&[json!({"role": "user", "content": " a "})])
                .unwrap(),
            "A"
        );
    }

    #[test]
    fn a_broken_template_is_refused() {
        assert!(ChatTemplate::new("{% for %}".into(), String::new(), String::new()).is_err());
    }
}
