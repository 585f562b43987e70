//! Reading TwiML into the typed model, with the carrier's error classes: a document that is not
//! XML (or not a `<Response>`) is 12100, one the schema does not allow is 12200.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use crate::model::*;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not well-formed XML: {0}")]
    Xml(String),
    #[error("the root element is <{0}>, not <Response>")]
    NotResponse(String),
    #[error("unknown element <{0}>")]
    Unknown(String),
    #[error("<{child}> is not allowed inside <{parent}>")]
    Misplaced { child: String, parent: String },
    #[error("<{element}> has an invalid {attribute}=\"{value}\"")]
    InvalidAttribute {
        element: String,
        attribute: String,
        value: String,
    },
    #[error("text is not allowed directly inside <{0}>")]
    UnexpectedText(String),
    /// An attribute this model does not know: not the carrier's, or not one it reads.
    #[error("<{element}> has an attribute {attribute} that is not supported")]
    UnsupportedAttribute { element: String, attribute: String },
}

impl ParseError {
    /// The carrier's error code for this problem.
    pub fn error_code(&self) -> u32 {
        match self {
            ParseError::Xml(_) | ParseError::NotResponse(_) => 12100,
            _ => 12200,
        }
    }
}

/// A parsed element before it is given meaning.
#[derive(Debug)]
struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
}

#[derive(Debug)]
enum Node {
    Element(Element),
    Text(String),
}

fn xml_err(e: impl std::fmt::Display) -> ParseError {
    ParseError::Xml(e.to_string())
}

fn open(e: &BytesStart) -> Result<Element, ParseError> {
    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(xml_err)?;
        let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
        let value = a.unescape_value().map_err(xml_err)?.into_owned();
        attrs.push((key, value));
    }
    Ok(Element {
        name,
        attrs,
        children: Vec::new(),
    })
}

/// Puts a finished element under its parent, or makes it the root.
fn attach(
    stack: &mut [Element],
    root: &mut Option<Element>,
    el: Element,
) -> Result<(), ParseError> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(el)),
        None if root.is_none() => *root = Some(el),
        None => return Err(ParseError::Xml("more than one root element".into())),
    }
    Ok(())
}

fn tree(xml: &str) -> Result<Element, ParseError> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        match reader.read_event().map_err(xml_err)? {
            Event::Start(e) => stack.push(open(&e)?),
            Event::Empty(e) => attach(&mut stack, &mut root, open(&e)?)?,
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| ParseError::Xml("unbalanced end tag".into()))?;
                attach(&mut stack, &mut root, el)?;
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(xml_err)?.into_owned();
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Text(text)),
                    None if text.trim().is_empty() => {}
                    None => return Err(ParseError::Xml("text outside the root element".into())),
                }
            }
            Event::CData(c) => {
                let text = String::from_utf8_lossy(&c.into_inner()).into_owned();
                if let Some(parent) = stack.last_mut() {
                    parent.children.push(Node::Text(text));
                }
            }
            Event::Eof => break,
            // Declarations, comments, processing instructions, doctypes carry no meaning here.
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(ParseError::Xml(format!(
            "<{}> is never closed",
            stack[stack.len() - 1].name
        )));
    }
    root.ok_or_else(|| ParseError::Xml("empty document".into()))
}

impl Element {
    /// Refuses an attribute not in `known` rather than ignore it.
    fn only(&self, known: &[&str]) -> Result<(), ParseError> {
        match self
            .attrs
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            Some((k, _)) => Err(ParseError::UnsupportedAttribute {
                element: self.name.clone(),
                attribute: k.clone(),
            }),
            None => Ok(()),
        }
    }

    fn attr(&self, name: &str) -> Option<String> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    fn invalid(&self, attribute: &str, value: &str) -> ParseError {
        ParseError::InvalidAttribute {
            element: self.name.clone(),
            attribute: attribute.into(),
            value: value.into(),
        }
    }

    fn num(&self, name: &str) -> Result<Option<u32>, ParseError> {
        self.attr(name)
            .map(|v| v.trim().parse::<u32>().map_err(|_| self.invalid(name, &v)))
            .transpose()
    }

    fn boolean(&self, name: &str) -> Result<Option<bool>, ParseError> {
        self.attr(name)
            .map(|v| match v.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(self.invalid(name, &v)),
            })
            .transpose()
    }

    fn method(&self, name: &str) -> Result<Option<Method>, ParseError> {
        self.attr(name)
            .map(|v| {
                Method::from_wire(&v.trim().to_ascii_uppercase())
                    .ok_or_else(|| self.invalid(name, &v))
            })
            .transpose()
    }

    /// All text content; nested elements are not allowed.
    fn text(&self) -> Result<String, ParseError> {
        let mut s = String::new();
        for c in &self.children {
            match c {
                Node::Text(t) => s.push_str(t),
                Node::Element(e) => {
                    return Err(ParseError::Misplaced {
                        child: e.name.clone(),
                        parent: self.name.clone(),
                    });
                }
            }
        }
        Ok(s)
    }

    /// Child elements; text between them must be whitespace.
    fn elements(&self) -> Result<Vec<&Element>, ParseError> {
        let mut out = Vec::new();
        for c in &self.children {
            match c {
                Node::Element(e) => out.push(e),
                Node::Text(t) if t.trim().is_empty() => {}
                Node::Text(_) => return Err(ParseError::UnexpectedText(self.name.clone())),
            }
        }
        Ok(out)
    }
}

/// Parses a TwiML voice document.
pub fn parse(xml: &str) -> Result<Response, ParseError> {
    let root = tree(xml)?;
    if root.name != "Response" {
        return Err(ParseError::NotResponse(root.name));
    }
    let verbs = root
        .elements()?
        .into_iter()
        .map(verb)
        .collect::<Result<_, _>>()?;
    Ok(Response { verbs })
}

impl std::str::FromStr for Response {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

fn say(e: &Element) -> Result<Say, ParseError> {
    e.only(&["voice", "language", "loop"])?;
    Ok(Say {
        text: e.text()?,
        voice: e.attr("voice"),
        language: e.attr("language"),
        loop_count: e.num("loop")?,
    })
}

fn play(e: &Element) -> Result<Play, ParseError> {
    e.only(&["loop", "digits"])?;
    Ok(Play {
        url: e.text()?.trim().to_owned(),
        loop_count: e.num("loop")?,
        digits: e.attr("digits"),
    })
}

fn pause(e: &Element) -> Result<Pause, ParseError> {
    if !e
        .children
        .iter()
        .all(|c| matches!(c, Node::Text(t) if t.trim().is_empty()))
    {
        return Err(ParseError::UnexpectedText("Pause".into()));
    }
    e.only(&["length"])?;
    Ok(Pause {
        length: e.num("length")?,
    })
}

/// The attributes each verb has in this model, as the carrier names them.
fn known_attributes(verb: &str) -> &'static [&'static str] {
    match verb {
        "Gather" => &[
            "action",
            "method",
            "input",
            "numDigits",
            "timeout",
            "finishOnKey",
            "actionOnEmptyResult",
        ],
        "Dial" => &[
            "action",
            "method",
            "timeout",
            "timeLimit",
            "callerId",
            "record",
            "recordingStatusCallback",
            "answerOnBridge",
            "hangupOnStar",
        ],
        "Number" => &[
            "url",
            "method",
            "sendDigits",
            "statusCallback",
            "statusCallbackEvent",
            "statusCallbackMethod",
        ],
        "Record" => &[
            "action",
            "method",
            "timeout",
            "maxLength",
            "finishOnKey",
            "playBeep",
            "transcribe",
            "recordingStatusCallback",
        ],
        "Redirect" => &["method"],
        "Reject" => &["reason"],
        _ => &[],
    }
}

fn verb(e: &Element) -> Result<Verb, ParseError> {
    if !matches!(e.name.as_str(), "Say" | "Play" | "Pause") {
        e.only(known_attributes(&e.name))?;
    }
    Ok(match e.name.as_str() {
        "Say" => Verb::Say(say(e)?),
        "Play" => Verb::Play(play(e)?),
        "Pause" => Verb::Pause(pause(e)?),
        "Gather" => Verb::Gather(Gather {
            action: e.attr("action"),
            method: e.method("method")?,
            input: e.attr("input"),
            num_digits: e.num("numDigits")?,
            timeout: e.num("timeout")?,
            finish_on_key: e.attr("finishOnKey"),
            action_on_empty_result: e.boolean("actionOnEmptyResult")?,
            children: e
                .elements()?
                .into_iter()
                .map(|c| match c.name.as_str() {
                    "Say" => Ok(GatherChild::Say(say(c)?)),
                    "Play" => Ok(GatherChild::Play(play(c)?)),
                    "Pause" => Ok(GatherChild::Pause(pause(c)?)),
                    other => Err(misplaced_or_unknown(other, "Gather")),
                })
                .collect::<Result<_, _>>()?,
        }),
        "Dial" => Verb::Dial(dial(e)?),
        "Record" => Verb::Record(Record {
            action: e.attr("action"),
            method: e.method("method")?,
            timeout: e.num("timeout")?,
            max_length: e.num("maxLength")?,
            finish_on_key: e.attr("finishOnKey"),
            play_beep: e.boolean("playBeep")?,
            transcribe: e.boolean("transcribe")?,
            recording_status_callback: e.attr("recordingStatusCallback"),
        }),
        "Redirect" => Verb::Redirect(Redirect {
            url: e.text()?.trim().to_owned(),
            method: e.method("method")?,
        }),
        "Hangup" => Verb::Hangup,
        "Reject" => Verb::Reject(Reject {
            reason: e.attr("reason"),
        }),
        other => return Err(misplaced_or_unknown(other, "Response")),
    })
}

const KNOWN: &[&str] = &[
    "Say", "Play", "Pause", "Gather", "Dial", "Record", "Redirect", "Hangup", "Reject", "Number",
    "Client", "Sip",
];

fn misplaced_or_unknown(name: &str, parent: &str) -> ParseError {
    if KNOWN.contains(&name) {
        ParseError::Misplaced {
            child: name.into(),
            parent: parent.into(),
        }
    } else {
        ParseError::Unknown(name.into())
    }
}

fn dial(e: &Element) -> Result<Dial, ParseError> {
    let record = e
        .attr("record")
        .map(|v| {
            // The carrier also accepts the older boolean form.
            match v.as_str() {
                "true" => Ok(DialRecord::RecordFromAnswer),
                "false" => Ok(DialRecord::DoNotRecord),
                other => DialRecord::from_wire(other).ok_or_else(|| e.invalid("record", &v)),
            }
        })
        .transpose()?;
    let mut targets = Vec::new();
    for c in &e.children {
        match c {
            Node::Text(t) if t.trim().is_empty() => {}
            Node::Text(t) => targets.push(DialTarget::Bare(t.trim().to_owned())),
            Node::Element(n) => targets.push(match n.name.as_str() {
                "Number" => {
                    n.only(known_attributes("Number"))?;
                    DialTarget::Number(Number {
                        number: n.text()?.trim().to_owned(),
                        url: n.attr("url"),
                        method: n.method("method")?,
                        send_digits: n.attr("sendDigits"),
                        status_callback: n.attr("statusCallback"),
                        status_callback_event: match n.attr("statusCallbackEvent") {
                            None => vec![],
                            Some(v) => v
                                .split([' ', ','])
                                .filter(|s| !s.is_empty())
                                .map(|s| {
                                    CallEvent::from_wire(s)
                                        .ok_or_else(|| n.invalid("statusCallbackEvent", &v))
                                })
                                .collect::<Result<_, _>>()?,
                        },
                        status_callback_method: n.method("statusCallbackMethod")?,
                    })
                }
                "Client" => DialTarget::Client(n.text()?.trim().to_owned()),
                "Sip" => DialTarget::Sip(n.text()?.trim().to_owned()),
                other => return Err(misplaced_or_unknown(other, "Dial")),
            }),
        }
    }
    Ok(Dial {
        action: e.attr("action"),
        method: e.method("method")?,
        timeout: e.num("timeout")?,
        time_limit: e.num("timeLimit")?,
        caller_id: e.attr("callerId"),
        record,
        recording_status_callback: e.attr("recordingStatusCallback"),
        answer_on_bridge: e.boolean("answerOnBridge")?,
        hangup_on_star: e.boolean("hangupOnStar")?,
        targets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_it_does_not_know_are_refused_not_ignored() {
        for (doc, element, attribute) in [
            (
                r#"<Response><Say colour="blue">hi</Say></Response>"#,
                "Say",
                "colour",
            ),
            (
                r#"<Response><Dial ringTone="uk">+15550001</Dial></Response>"#,
                "Dial",
                "ringTone",
            ),
            (
                r#"<Response><Dial><Number machineDetection="Enable">+15550001</Number></Dial></Response>"#,
                "Number",
                "machineDetection",
            ),
            (
                r#"<Response><Hangup reason="x"/></Response>"#,
                "Hangup",
                "reason",
            ),
        ] {
            let e = parse(doc).unwrap_err();
            assert_eq!(
                e,
                ParseError::UnsupportedAttribute {
                    element: element.into(),
                    attribute: attribute.into()
                },
                "{doc}"
            );
            assert_eq!(e.error_code(), 12200);
        }
    }

    #[test]
    fn error_classes() {
        assert_eq!(
            parse("<Response><Say>hi</Response>")
                .unwrap_err()
                .error_code(),
            12100
        );
        assert_eq!(parse("not xml at all").unwrap_err().error_code(), 12100);
        assert_eq!(parse("<Document/>").unwrap_err().error_code(), 12100);
        assert_eq!(
            parse("<Response><Foo/></Response>").unwrap_err(),
            ParseError::Unknown("Foo".into())
        );
        assert_eq!(
            parse(r#"<Response><Dial timeout="abc">+1</Dial></Response>"#)
                .unwrap_err()
                .error_code(),
            12200
        );
        assert_eq!(
            parse("<Response><Gather><Dial>+1</Dial></Gather></Response>").unwrap_err(),
            ParseError::Misplaced {
                child: "Dial".into(),
                parent: "Gather".into()
            }
        );
        assert_eq!(
            parse("<Response>hello</Response>")
                .unwrap_err()
                .error_code(),
            12200
        );
    }

    #[test]
    fn reads_pretty_printed_documents() {
        let doc = parse(
            "<?xml version=\"1.0\"?>\n<!-- greeting -->\n<Response>\n  <Say loop=\"2\">Hi &amp; welcome</Say>\n  <Dial>\n    +14045550111\n  </Dial>\n  <Hangup/>\n</Response>\n",
        )
        .unwrap();
        assert_eq!(
            doc.verbs,
            vec![
                Verb::Say(Say {
                    text: "Hi & welcome".into(),
                    loop_count: Some(2),
                    ..Default::default()
                }),
                Verb::Dial(Dial {
                    targets: vec![DialTarget::Bare("+14045550111".into())],
                    ..Default::default()
                }),
                Verb::Hangup,
            ]
        );
    }
}
