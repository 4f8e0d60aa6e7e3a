"""Drives a running mamba-server with the official `openai` package.

usage: openai_client.py BASE_URL API_KEY EXPECTED_GREEDY_TEXT
A greedy completion of "ROMEO:" (40 tokens) must equal EXPECTED_GREEDY_TEXT, the
streamed one must concatenate to the same, and a chat completion must answer.
"""
import sys

from openai import OpenAI

base_url, api_key, expected = sys.argv[1], sys.argv[2], sys.argv[3]
client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=120)

models = client.models.list()
model = models.data[0].id

c = client.completions.create(model=model, prompt="ROMEO:", max_tokens=40, temperature=0)
assert c.choices[0].text == expected, (c.choices[0].text, expected)
assert c.usage.completion_tokens > 0
assert c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens

pieces, usage = [], None
for chunk in client.completions.create(
    model=model, prompt="ROMEO:", max_tokens=40, temperature=0, stream=True,
    stream_options={"include_usage": True},
):
    if chunk.usage is not None:
        usage = chunk.usage
    for choice in chunk.choices:
        pieces.append(choice.text)
assert "".join(pieces) == expected, ("".join(pieces), expected)
assert usage is not None and usage.completion_tokens == c.usage.completion_tokens

# Scoring a prompt (lm-eval's loglikelihood request): echo, logprobs, nothing generated.
scored = client.completions.create(model=model, prompt="ROMEO: What", max_tokens=0, echo=True, logprobs=1)
lp = scored.choices[0].logprobs
assert scored.choices[0].text == "ROMEO: What", scored
assert lp.token_logprobs[0] is None and all(x <= 0 for x in lp.token_logprobs[1:]), lp
assert len(lp.tokens) == scored.usage.prompt_tokens and scored.usage.completion_tokens == 0, scored

chat = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "What say you?"}],
    max_tokens=16, temperature=0,
)
assert chat.choices[0].message.role == "assistant"
assert chat.choices[0].message.content, chat
streamed = "".join(
    (chunk.choices[0].delta.content or "") if chunk.choices else ""
    for chunk in client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "What say you?"}],
        max_tokens=16, temperature=0, stream=True,
    )
)
assert streamed == chat.choices[0].message.content, (streamed, chat.choices[0].message.content)
print("openai client: OK")
