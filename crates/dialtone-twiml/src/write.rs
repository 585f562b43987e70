//! Writing TwiML with quick-xml: escaping is the writer's job, never ours.

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use crate::model::*;

type W<'a> = Writer<&'a mut Vec<u8>>;

impl Response {
    /// The document as the carrier expects it, XML declaration included.
    pub fn to_xml(&self) -> String {
        let mut out = Vec::with_capacity(256);
        self.write_to(&mut out);
        // The writer only produces UTF-8 from UTF-8 input.
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// Appends the document to `out` (reuse one buffer on hot paths).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        // Writing into a Vec cannot fail.
        let _ = w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
        if self.verbs.is_empty() {
            empty(&mut w, BytesStart::new("Response"));
            return;
        }
        start(&mut w, BytesStart::new("Response"));
        for verb in &self.verbs {
            write_verb(&mut w, verb);
        }
        end(&mut w, "Response");
    }
}

fn start(w: &mut W, e: BytesStart) {
    let _ = w.write_event(Event::Start(e));
}

fn empty(w: &mut W, e: BytesStart) {
    let _ = w.write_event(Event::Empty(e));
}

fn end(w: &mut W, name: &str) {
    let _ = w.write_event(Event::End(BytesEnd::new(name)));
}

/// `<name attrs>text</name>`, or `<name attrs/>` when there is no text.
fn element(w: &mut W, e: BytesStart, text: &str) {
    if text.is_empty() {
        return empty(w, e);
    }
    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
    start(w, e);
    let _ = w.write_event(Event::Text(BytesText::new(text)));
    end(w, &name);
}

fn attr(e: &mut BytesStart, name: &str, value: &Option<String>) {
    if let Some(v) = value {
        e.push_attribute((name, v.as_str()));
    }
}

fn attr_num(e: &mut BytesStart, name: &str, value: Option<u32>) {
    if let Some(v) = value {
        e.push_attribute((name, v.to_string().as_str()));
    }
}

fn attr_bool(e: &mut BytesStart, name: &str, value: Option<bool>) {
    if let Some(v) = value {
        e.push_attribute((name, if v { "true" } else { "false" }));
    }
}

fn attr_method(e: &mut BytesStart, name: &str, value: Option<Method>) {
    if let Some(m) = value {
        e.push_attribute((name, m.as_str()));
    }
}

fn say(w: &mut W, s: &Say) {
    let mut e = BytesStart::new("Say");
    attr(&mut e, "voice", &s.voice);
    attr(&mut e, "language", &s.language);
    attr_num(&mut e, "loop", s.loop_count);
    element(w, e, &s.text);
}

fn play(w: &mut W, p: &Play) {
    let mut e = BytesStart::new("Play");
    attr_num(&mut e, "loop", p.loop_count);
    attr(&mut e, "digits", &p.digits);
    element(w, e, &p.url);
}

fn pause(w: &mut W, p: &Pause) {
    let mut e = BytesStart::new("Pause");
    attr_num(&mut e, "length", p.length);
    empty(w, e);
}

fn write_verb(w: &mut W, verb: &Verb) {
    match verb {
        Verb::Say(s) => say(w, s),
        Verb::Play(p) => play(w, p),
        Verb::Pause(p) => pause(w, p),
        Verb::Gather(g) => {
            let mut e = BytesStart::new("Gather");
            attr(&mut e, "action", &g.action);
            attr_method(&mut e, "method", g.method);
            attr(&mut e, "input", &g.input);
            attr_num(&mut e, "numDigits", g.num_digits);
            attr_num(&mut e, "timeout", g.timeout);
            attr(&mut e, "finishOnKey", &g.finish_on_key);
            attr_bool(&mut e, "actionOnEmptyResult", g.action_on_empty_result);
            if g.children.is_empty() {
                return empty(w, e);
            }
            start(w, e);
            for c in &g.children {
                match c {
                    GatherChild::Say(s) => say(w, s),
                    GatherChild::Play(p) => play(w, p),
                    GatherChild::Pause(p) => pause(w, p),
                }
            }
            end(w, "Gather");
        }
        Verb::Dial(d) => {
            let mut e = BytesStart::new("Dial");
            attr(&mut e, "action", &d.action);
            attr_method(&mut e, "method", d.method);
            attr_num(&mut e, "timeout", d.timeout);
            attr_num(&mut e, "timeLimit", d.time_limit);
            attr(&mut e, "callerId", &d.caller_id);
            if let Some(r) = d.record {
                e.push_attribute(("record", r.as_str()));
            }
            attr(
                &mut e,
                "recordingStatusCallback",
                &d.recording_status_callback,
            );
            attr_bool(&mut e, "answerOnBridge", d.answer_on_bridge);
            attr_bool(&mut e, "hangupOnStar", d.hangup_on_star);
            if d.targets.is_empty() {
                return empty(w, e);
            }
            start(w, e);
            for t in &d.targets {
                match t {
                    DialTarget::Bare(n) => {
                        let _ = w.write_event(Event::Text(BytesText::new(n)));
                    }
                    DialTarget::Number(n) => {
                        let mut e = BytesStart::new("Number");
                        attr(&mut e, "url", &n.url);
                        attr_method(&mut e, "method", n.method);
                        attr(&mut e, "sendDigits", &n.send_digits);
                        attr(&mut e, "statusCallback", &n.status_callback);
                        if !n.status_callback_event.is_empty() {
                            let events: Vec<&str> =
                                n.status_callback_event.iter().map(|e| e.as_str()).collect();
                            e.push_attribute(("statusCallbackEvent", events.join(" ").as_str()));
                        }
                        attr_method(&mut e, "statusCallbackMethod", n.status_callback_method);
                        element(w, e, &n.number);
                    }
                    DialTarget::Client(c) => element(w, BytesStart::new("Client"), c),
                    DialTarget::Sip(s) => element(w, BytesStart::new("Sip"), s),
                }
            }
            end(w, "Dial");
        }
        Verb::Record(r) => {
            let mut e = BytesStart::new("Record");
            attr(&mut e, "action", &r.action);
            attr_method(&mut e, "method", r.method);
            attr_num(&mut e, "timeout", r.timeout);
            attr_num(&mut e, "maxLength", r.max_length);
            attr(&mut e, "finishOnKey", &r.finish_on_key);
            attr_bool(&mut e, "playBeep", r.play_beep);
            attr_bool(&mut e, "transcribe", r.transcribe);
            attr(
                &mut e,
                "recordingStatusCallback",
                &r.recording_status_callback,
            );
            empty(w, e);
        }
        Verb::Redirect(r) => {
            let mut e = BytesStart::new("Redirect");
            attr_method(&mut e, "method", r.method);
            element(w, e, &r.url);
        }
        Verb::Hangup => empty(w, BytesStart::new("Hangup")),
        Verb::Reject(r) => {
            let mut e = BytesStart::new("Reject");
            attr(&mut e, "reason", &r.reason);
            empty(w, e);
        }
    }
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
