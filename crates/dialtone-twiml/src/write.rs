//! Writing TwiML. Hand-rolled on purpose: this runs on every webhook, and a general XML writer
//! (quick-xml's, which this replaced) allocated a buffer per element and cost about five times
//! as much. Escaping is done here in one place, `escape`, and the output is checked against
//! literal documents, against quick-xml's parser (round trips), and against documents the
//! carrier's official library builds (tests/official_library.rs).

use std::io::Write as _;

use crate::model::*;

/// Appends `s` with the five XML special characters escaped.
fn escape(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, b) in bytes.iter().enumerate() {
        let entity: &[u8] = match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'"' => b"&quot;",
            b'\'' => b"&apos;",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(entity);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// An element being written: `<Name a="1"`, then either `/>` or `>…</Name>`.
struct Element<'a> {
    out: &'a mut Vec<u8>,
    name: &'static str,
}

impl<'a> Element<'a> {
    fn open(out: &'a mut Vec<u8>, name: &'static str) -> Self {
        out.push(b'<');
        out.extend_from_slice(name.as_bytes());
        Self { out, name }
    }

    fn attr(&mut self, name: &str, value: &Option<String>) -> &mut Self {
        if let Some(v) = value {
            self.raw_attr(name, v);
        }
        self
    }

    fn raw_attr(&mut self, name: &str, value: &str) {
        self.out.push(b' ');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"=\"");
        escape(self.out, value);
        self.out.push(b'"');
    }

    fn num(&mut self, name: &str, value: Option<u32>) -> &mut Self {
        if let Some(v) = value {
            self.out.push(b' ');
            self.out.extend_from_slice(name.as_bytes());
            // Writing into a Vec cannot fail.
            let _ = write!(self.out, "=\"{v}\"");
        }
        self
    }

    fn flag(&mut self, name: &str, value: Option<bool>) -> &mut Self {
        if let Some(v) = value {
            self.raw_attr(name, if v { "true" } else { "false" });
        }
        self
    }

    fn method(&mut self, name: &str, value: Option<Method>) -> &mut Self {
        if let Some(m) = value {
            self.raw_attr(name, m.as_str());
        }
        self
    }

    /// `/>`.
    fn empty(&mut self) {
        self.out.extend_from_slice(b"/>");
    }

    /// `>text</Name>`, or `/>` when there is no text.
    fn text(&mut self, text: &str) {
        if text.is_empty() {
            return self.empty();
        }
        self.out.push(b'>');
        escape(self.out, text);
        self.close();
    }

    /// `>` then whatever `body` writes, then `</Name>`.
    fn children(&mut self, body: impl FnOnce(&mut Vec<u8>)) {
        self.out.push(b'>');
        body(self.out);
        self.close();
    }

    fn close(&mut self) {
        self.out.extend_from_slice(b"</");
        self.out.extend_from_slice(self.name.as_bytes());
        self.out.push(b'>');
    }
}

impl Response {
    /// The document as the carrier expects it, XML declaration included.
    pub fn to_xml(&self) -> String {
        let mut out = Vec::with_capacity(256);
        self.write_to(&mut out);
        // Only UTF-8 text and ASCII markup were written.
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// Appends the document to `out` (reuse one buffer on hot paths).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(br#"<?xml version="1.0" encoding="UTF-8"?>"#);
        let mut root = Element::open(out, "Response");
        if self.verbs.is_empty() {
            return root.empty();
        }
        root.children(|out| {
            for verb in &self.verbs {
                write_verb(out, verb);
            }
        });
    }
}

fn say(out: &mut Vec<u8>, s: &Say) {
    Element::open(out, "Say")
        .attr("voice", &s.voice)
        .attr("language", &s.language)
        .num("loop", s.loop_count)
        .text(&s.text);
}

fn play(out: &mut Vec<u8>, p: &Play) {
    Element::open(out, "Play")
        .num("loop", p.loop_count)
        .attr("digits", &p.digits)
        .text(&p.url);
}

fn pause(out: &mut Vec<u8>, p: &Pause) {
    Element::open(out, "Pause").num("length", p.length).empty();
}

fn write_verb(out: &mut Vec<u8>, verb: &Verb) {
    match verb {
        Verb::Say(s) => say(out, s),
        Verb::Play(p) => play(out, p),
        Verb::Pause(p) => pause(out, p),
        Verb::Gather(g) => {
            let mut e = Element::open(out, "Gather");
            e.attr("action", &g.action)
                .method("method", g.method)
                .attr("input", &g.input)
                .num("numDigits", g.num_digits)
                .num("timeout", g.timeout)
                .attr("finishOnKey", &g.finish_on_key)
                .flag("actionOnEmptyResult", g.action_on_empty_result);
            if g.children.is_empty() {
                return e.empty();
            }
            e.children(|out| {
                for c in &g.children {
                    match c {
                        GatherChild::Say(s) => say(out, s),
                        GatherChild::Play(p) => play(out, p),
                        GatherChild::Pause(p) => pause(out, p),
                    }
                }
            });
        }
        Verb::Dial(d) => {
            let mut e = Element::open(out, "Dial");
            e.attr("action", &d.action)
                .method("method", d.method)
                .num("timeout", d.timeout)
                .num("timeLimit", d.time_limit)
                .attr("callerId", &d.caller_id);
            if let Some(r) = d.record {
                e.raw_attr("record", r.as_str());
            }
            e.attr("recordingStatusCallback", &d.recording_status_callback)
                .flag("answerOnBridge", d.answer_on_bridge)
                .flag("hangupOnStar", d.hangup_on_star);
            if d.targets.is_empty() {
                return e.empty();
            }
            e.children(|out| {
                for t in &d.targets {
                    match t {
                        DialTarget::Bare(n) => escape(out, n),
                        DialTarget::Number(n) => number(out, n),
                        DialTarget::Client(c) => Element::open(out, "Client").text(c),
                        DialTarget::Sip(s) => Element::open(out, "Sip").text(s),
                    }
                }
            });
        }
        Verb::Record(r) => {
            Element::open(out, "Record")
                .attr("action", &r.action)
                .method("method", r.method)
                .num("timeout", r.timeout)
                .num("maxLength", r.max_length)
                .attr("finishOnKey", &r.finish_on_key)
                .flag("playBeep", r.play_beep)
                .flag("transcribe", r.transcribe)
                .attr("recordingStatusCallback", &r.recording_status_callback)
                .empty();
        }
        Verb::Redirect(r) => Element::open(out, "Redirect")
            .method("method", r.method)
            .text(&r.url),
        Verb::Hangup => Element::open(out, "Hangup").empty(),
        Verb::Reject(r) => Element::open(out, "Reject")
            .attr("reason", &r.reason)
            .empty(),
    }
}

fn number(out: &mut Vec<u8>, n: &Number) {
    let mut e = Element::open(out, "Number");
    e.attr("url", &n.url)
        .method("method", n.method)
        .attr("sendDigits", &n.send_digits)
        .attr("statusCallback", &n.status_callback);
    if !n.status_callback_event.is_empty() {
        e.out.extend_from_slice(b" statusCallbackEvent=\"");
        for (i, event) in n.status_callback_event.iter().enumerate() {
            if i > 0 {
                e.out.push(b' ');
            }
            e.out.extend_from_slice(event.as_str().as_bytes());
        }
        e.out.push(b'"');
    }
    e.method("statusCallbackMethod", n.status_callback_method)
        .text(&n.number);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_the_carrier_reads() {
        let doc = Response {
            verbs: vec![
                Verb::Say(Say {
                    text: "Calls & \"more\" <here>".into(),
                    voice: Some("alice".into()),
                    ..Default::default()
                }),
                Verb::Dial(Dial {
                    action: Some("https://x.example/dial?a=1&b=2".into()),
                    timeout: Some(20),
                    record: Some(DialRecord::RecordFromAnswerDual),
                    targets: vec![DialTarget::Number(Number {
                        number: "+14045550111".into(),
                        status_callback_event: vec![CallEvent::Initiated, CallEvent::Completed],
                        ..Default::default()
                    })],
                    ..Default::default()
                }),
                Verb::Hangup,
            ],
        };
        assert_eq!(
            doc.to_xml(),
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say voice="alice">Calls &amp; &quot;more&quot; &lt;here&gt;</Say>"#,
                r#"<Dial action="https://x.example/dial?a=1&amp;b=2" timeout="20" record="record-from-answer-dual">"#,
                r#"<Number statusCallbackEvent="initiated completed">+14045550111</Number></Dial><Hangup/></Response>"#
            )
        );
        assert_eq!(
            Response::default().to_xml(),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#
        );
    }
}
