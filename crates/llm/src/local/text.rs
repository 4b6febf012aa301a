//! Turning a stream of token bytes into text that is safe to show as it arrives: whole UTF-8
//! characters only, and nothing that might turn out to be the start of a stop string.

/// Decodes token bytes into UTF-8 text, holding back a character split across tokens until
/// its last byte arrives. Bytes that can never form a character become U+FFFD.
#[derive(Debug, Default)]
pub(crate) struct Utf8Decoder {
    pending: Vec<u8>,
}

impl Utf8Decoder {
    /// Adds `bytes` and returns the text that is now complete.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(text) => {
                    out.push_str(text);
                    self.pending.clear();
                    return out;
                }
                Err(err) => {
                    let valid = err.valid_up_to();
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match err.error_len() {
                        // An incomplete character at the end: wait for more bytes.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Ends the stream: whatever is still held back is emitted (lossily).
    pub(crate) fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

/// Finds stop strings in generated text and decides how much of the text may be streamed.
#[derive(Debug)]
pub(crate) struct StopScanner {
    stops: Vec<String>,
    text: String,
    emitted: usize,
}

/// What [`StopScanner::push`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Text that may be streamed now.
    pub(crate) ready: String,
    /// A stop string was found; the text ends before it.
    pub(crate) stopped: bool,
}

impl StopScanner {
    pub(crate) fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            text: String::new(),
            emitted: 0,
        }
    }

    /// Adds generated text; returns what can be streamed now and whether a stop string ended
    /// the answer (the stop string itself is not part of the answer).
    pub(crate) fn push(&mut self, piece: &str) -> Scan {
        // A stop string can only end inside the new piece: search from where the longest one
        // could have started.
        let longest = self.stops.iter().map(String::len).max().unwrap_or(0);
        let mut from = self.text.len().saturating_sub(longest.saturating_sub(1));
        while !self.text.is_char_boundary(from) {
            from -= 1;
        }
        self.text.push_str(piece);
        let hit = self
            .stops
            .iter()
            .filter_map(|stop| self.text[from..].find(stop.as_str()))
            .min();
        if let Some(at) = hit {
            self.text.truncate(from + at);
            return Scan {
                ready: self.take(self.text.len()),
                stopped: true,
            };
        }
        let hold = self.held_back();
        Scan {
            ready: self.take(self.text.len() - hold),
            stopped: false,
        }
    }

    /// Ends the stream: the text held back is released.
    pub(crate) fn finish(&mut self) -> String {
        self.take(self.text.len())
    }

    /// The whole answer so far.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    fn take(&mut self, upto: usize) -> String {
        let upto = upto.max(self.emitted);
        let ready = self.text[self.emitted..upto].to_owned();
        self.emitted = upto;
        ready
    }

    /// Length of the longest tail of the text that begins some stop string.
    fn held_back(&self) -> usize {
        let mut hold = 0;
        for stop in &self.stops {
            for (end, _) in stop.char_indices().skip(1) {
                let prefix = &stop[..end];
                if end > hold && self.text.ends_with(prefix) {
                    hold = end;
                }
            }
        }
        hold.min(self.text.len() - self.emitted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multibyte_character_split_across_tokens_is_held_back() {
        let mut d = Utf8Decoder::default();
        let bytes = "é😀".as_bytes();
        assert_eq!(d.push(&bytes[..1]), "");
        assert_eq!(d.push(&bytes[1..3]), "é");
        assert_eq!(d.push(&bytes[3..5]), "");
        assert_eq!(d.push(&bytes[5..]), "😀");
        assert_eq!(d.finish(), "");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut d = Utf8Decoder::default();
        assert_eq!(d.push(b"a\xffb"), "a\u{fffd}b");
        assert_eq!(d.push(b"\xe2\x82"), "");
        assert_eq!(d.finish(), "\u{fffd}");
    }

    #[test]
    fn stop_string_split_across_pieces_ends_the_answer_and_is_never_streamed() {
        let mut s = StopScanner::new(&["END".to_owned()]);
        let mut streamed = String::new();
        for piece in ["hello E", "N", "D and more"] {
            let scan = s.push(piece);
            streamed.push_str(&scan.ready);
            if scan.stopped {
                break;
            }
        }
        assert_eq!(streamed, "hello ");
        assert_eq!(s.text(), "hello ");
    }

    #[test]
    fn false_start_of_a_stop_string_is_released() {
        let mut s = StopScanner::new(&["</done>".to_owned()]);
        assert_eq!(s.push("a </d").ready, "a ");
        let scan = s.push("iv>");
        assert_eq!(
            scan,
            Scan {
                ready: "</div>".to_owned(),
                stopped: false
            }
        );
        assert_eq!(s.push("x</").ready, "x");
        assert_eq!(s.finish(), "</");
        assert_eq!(s.text(), "a </div>x</");
    }

    #[test]
    fn earliest_of_several_stop_strings_wins() {
        let mut s = StopScanner::new(&["bb".to_owned(), "a".to_owned()]);
        let scan = s.push("xxbbya");
        assert_eq!(
            scan,
            Scan {
                ready: "xx".to_owned(),
                stopped: true
            }
        );
    }

    #[test]
    fn no_stop_strings_streams_everything() {
        let mut s = StopScanner::new(&[String::new()]);
        assert_eq!(s.push("ab").ready, "ab");
        assert_eq!(s.push("ç").ready, "ç");
        assert_eq!(s.finish(), "");
    }

    #[test]
    fn stop_string_with_multibyte_characters() {
        let mut s = StopScanner::new(&["ωω".to_owned()]);
        assert_eq!(s.push("aω").ready, "a");
        assert_eq!(s.push("ω").ready, "");
        assert_eq!(s.text(), "a");
    }
}
