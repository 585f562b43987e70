//! `dialtone backup export`: a static document per tracking number that rings the company's
//! primary number, for the carrier's Fallback URL when dialtone is unreachable.

mod common;

use common::*;
use dialtone_twiml::{DialTarget, Verb};

#[test]
fn every_tracking_number_gets_a_document_ringing_its_companys_primary_number() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("backup");
    let (code, stdout, err) = run(&["backup", "export", "--demo", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.starts_with("6 backup documents"), "{stdout}");
    let index = std::fs::read_to_string(out.join("index.csv")).unwrap();
    let rows: Vec<&str> = index.lines().skip(1).collect();
    assert_eq!(rows.len(), 6);
    for row in rows {
        let fields: Vec<&str> = row.split(',').collect();
        let (number, primary, file) = (fields[0], fields[3], fields[4]);
        assert_eq!(file, format!("{}.xml", &number[1..]));
        let doc = dialtone_twiml::parse(&std::fs::read_to_string(out.join(file)).unwrap())
            .expect("valid TwiML");
        let Some(Verb::Dial(dial)) = doc.verbs.first() else {
            panic!("{doc:?}")
        };
        let rung: Vec<&str> = dial
            .targets
            .iter()
            .filter_map(|t| match t {
                DialTarget::Number(n) => Some(n.number.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(rung, [primary], "{number}");
        assert_eq!(primary, "+14045550111", "the demo company's office");
    }
}
