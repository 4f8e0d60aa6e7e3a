//! Stop strings over streamed text: releases text as soon as it cannot be the
//! start of a stop string, and cuts the text before the first stop string found.

/// The text of one choice so far, with the part already released.
#[derive(Clone, Debug, Default)]
pub struct StopScanner {
    stops: Vec<String>,
    text: String,
    released: usize,
    stopped: bool,
}

impl StopScanner {
    /// A scanner for `stops` (non-empty strings).
    pub fn new(stops: Vec<String>) -> StopScanner {
        StopScanner {
            stops,
            ..StopScanner::default()
        }
    }

    /// True once a stop string was found.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Adds a piece of generated text; returns the text that can be released now.
    /// After a stop string is found, the text is cut before it and nothing more is
    /// taken.
    pub fn push(&mut self, piece: &str) -> String {
        if self.stopped {
            return String::new();
        }
        self.text.push_str(piece);
        // Held-back text is never a whole stop string, so any stop string starts in
        // the unreleased part (see `held`).
        let tail = &self.text[self.released..];
        if let Some(pos) = self
            .stops
            .iter()
            .filter_map(|s| tail.find(s.as_str()))
            .min()
        {
            let end = self.released + pos;
            let out = self.text[self.released..end].to_string();
            self.text.truncate(end);
            self.released = end;
            self.stopped = true;
            return out;
        }
        let end = self.text.len() - self.held();
        let out = self.text[self.released..end].to_string();
        self.released = end;
        out
    }

    /// Length of the longest unreleased suffix that is a proper prefix of a stop
    /// string (and starts on a character boundary): it may become one.
    fn held(&self) -> usize {
        let unreleased = self.text.len() - self.released;
        let mut best = 0;
        for s in &self.stops {
            for k in (1..s.len().min(unreleased + 1)).rev() {
                if k <= best {
                    break;
                }
                let start = self.text.len() - k;
                if self.text.is_char_boundary(start)
                    && self.text.as_bytes()[start..] == s.as_bytes()[..k]
                {
                    best = k;
                    break;
                }
            }
        }
        best
    }

    /// Releases whatever is held back (at the end of the choice).
    pub fn finish(&mut self) -> String {
        let out = self.text[self.released..].to_string();
        self.released = self.text.len();
        out
    }

    /// The whole text so far (cut at a stop string once found).
    pub fn text(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(stops: &[&str], pieces: &[&str]) -> (Vec<String>, bool, String) {
        let mut s = StopScanner::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out: Vec<String> = pieces.iter().map(|p| s.push(p)).collect();
        let stopped = s.stopped();
        out.push(s.finish());
        (out, stopped, s.text().to_string())
    }

    #[test]
    fn cuts_before_the_stop_string_across_pieces() {
        let (out, stopped, text) = feed(&["END"], &["abc E", "N", "Dxyz"]);
        assert!(stopped);
        assert_eq!(out, vec!["abc ", "", "", ""]);
        assert_eq!(text, "abc ");
    }

    #[test]
    fn releases_a_false_start() {
        let (out, stopped, _) = feed(&["END"], &["xE", "Nx", "y"]);
        assert!(!stopped);
        assert_eq!(out.concat(), "xENxy");
        assert_eq!(out[0], "x", "E is held");
        assert_eq!(out[1], "ENx");
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        let (out, stopped, text) = feed(&["b", "\n\n"], &["a\n\nb"]);
        assert!(stopped);
        assert_eq!(text, "a");
        assert_eq!(out.concat(), "a");
    }

    #[test]
    fn without_stops_everything_flows() {
        let (out, stopped, _) = feed(&[], &["é", "x"]);
        assert!(!stopped);
        assert_eq!(out, vec!["é", "x", ""]);
    }

    #[test]
    fn multibyte_stop_strings() {
        let (out, stopped, text) = feed(&["éé"], &["aé", "é!"]);
        assert!(stopped);
        assert_eq!(out[0], "a");
        assert_eq!(text, "a");
    }
}
