"""The carrier's official helper library as an oracle for dialtone's protocol code.

Reads one JSON request on stdin, writes one JSON answer on stdout:
  {"op": "sign", "token": T, "cases": [{"url": U, "params": [[k, v], ...]}]}  -> [signature, ...]
  {"op": "validate", "token": T, "cases": [{"url", "params", "signature"}]}  -> [bool, ...]
  {"op": "twiml"} -> [{"name": N, "xml": X}, ...] built with VoiceResponse
  {"op": "parse", "documents": [X, ...]} -> [canonical form of each, via the library's XML]
"""
import json
import sys

from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse, Gather, Dial


class MultiDict(dict):
    """Repeated parameter names, the way Flask hands them to the validator (`getall`)."""

    def __init__(self, pairs):
        super().__init__()
        self._pairs = pairs
        for k, v in pairs:
            self.setdefault(k, v)

    def getall(self, name):
        return [v for k, v in self._pairs if k == name]


def params_of(case):
    return MultiDict([tuple(p) for p in case["params"]])


def documents():
    docs = []

    r = VoiceResponse()
    r.say("Hello & welcome <friend> \"quoted\" 'single' — café ☎", voice="alice", language="en-US", loop=2)
    docs.append(("say", r))

    r = VoiceResponse()
    r.play("https://example.com/a.mp3", loop=3, digits="ww1")
    r.pause(length=2)
    r.pause()
    docs.append(("play_pause", r))

    r = VoiceResponse()
    g = Gather(action="https://dt.example/twilio/gather?company=a&flow=b&step=c", method="POST", input="dtmf",
               num_digits=1, timeout=5, finish_on_key="#", action_on_empty_result=True)
    g.say("For sales, press 1.")
    g.play("https://example.com/menu.mp3")
    g.pause(length=1)
    r.append(g)
    r.redirect("https://dt.example/twilio/gather?company=a&flow=b&step=c", method="POST")
    docs.append(("gather", r))

    r = VoiceResponse()
    d = Dial(action="https://dt.example/twilio/dial?step=ring&rec=1", method="POST", timeout=20, time_limit=600,
             caller_id="+14045550100", record="record-from-answer-dual",
             recording_status_callback="https://dt.example/twilio/recording", answer_on_bridge=True,
             hangup_on_star=False)
    d.number("+14045550111", url="https://dt.example/twilio/whisper?step=ring", method="POST", send_digits="ww12",
             status_callback="https://dt.example/twilio/leg", status_callback_event="initiated ringing answered completed",
             status_callback_method="POST")
    d.number("+14045550112")
    d.client("agent_jane")
    d.sip("sip:jane@example.com")
    r.append(d)
    docs.append(("dial", r))

    r = VoiceResponse()
    r.dial("+14045550111")
    docs.append(("dial_bare", r))

    r = VoiceResponse()
    r.record(action="https://dt.example/twilio/voicemail", method="POST", timeout=5, max_length=120, finish_on_key="#",
             play_beep=True, transcribe=False, recording_status_callback="https://dt.example/twilio/recording?voicemail=1")
    r.hangup()
    docs.append(("record_hangup", r))

    r = VoiceResponse()
    r.reject(reason="busy")
    docs.append(("reject", r))

    r = VoiceResponse()
    docs.append(("empty", r))
    return [{"name": n, "xml": str(r)} for n, r in docs]


def main():
    req = json.load(sys.stdin)
    op = req["op"]
    if op == "sign":
        v = RequestValidator(req["token"])
        out = [v.compute_signature(c["url"], params_of(c)) for c in req["cases"]]
    elif op == "validate":
        v = RequestValidator(req["token"])
        out = [v.validate(c["url"], params_of(c), c["signature"]) for c in req["cases"]]
    elif op == "twiml":
        out = documents()
    else:
        raise SystemExit(f"unknown op {op}")
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
