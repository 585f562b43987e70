"""The carrier's official helper library as an oracle for dialtone's protocol code.

Reads one JSON request on stdin, writes one JSON answer on stdout:
  {"op": "sign", "token": T, "cases": [{"url": U, "params": [[k, v], ...]}]}  -> [signature, ...]
  {"op": "validate", "token": T, "cases": [{"url", "params", "signature"}]}  -> [bool, ...]
  {"op": "twiml"} -> [{"name": N, "xml": X}, ...] built with VoiceResponse
  {"op": "rest", "base_url": U, "account_sid": A, "token": T, "page_size": N} -> what the
      library's REST client read from the API at U (the emulated carrier): see rest()
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


def rest(req):
    """Uses the library's own REST client, as an application would, against the API at base_url:
    lists and pages, fetches, numbers bought, updated and released, and one error."""
    from datetime import datetime

    from twilio.base.exceptions import TwilioRestException
    from twilio.rest import Client

    client = Client(req["account_sid"], req["token"])
    client.api.base_url = req["base_url"]
    size = req["page_size"]

    def dated(resource, *fields):
        return all(getattr(resource, f) is None or isinstance(getattr(resource, f), datetime) for f in fields)

    out = {}
    calls = client.calls.list(page_size=size)
    out["calls"] = [c.sid for c in calls]
    out["calls_dated"] = all(dated(c, "date_created", "start_time", "end_time") for c in calls)
    pages, page = 1, client.calls.page(page_size=size)
    while page.next_page_url:
        page, pages = page.next_page(), pages + 1
    out["call_pages"] = pages
    call = client.calls(calls[0].sid).fetch()
    out["call"] = {"sid": call.sid, "status": call.status, "direction": call.direction,
                   "parent_call_sid": call.parent_call_sid, "duration": call.duration}
    out["legs_of_first"] = [c.sid for c in client.calls.list(parent_call_sid=calls[-1].sid)]

    recordings = client.recordings.list(page_size=size)
    out["recordings"] = [r.sid for r in recordings]
    recording = client.recordings(recordings[0].sid).fetch()
    out["recording"] = {"sid": recording.sid, "call_sid": recording.call_sid, "source": recording.source,
                        "status": recording.status, "channels": recording.channels,
                        "dated": dated(recording, "date_created", "start_time")}
    of_call = client.calls(recording.call_sid).recordings.list()
    out["recordings_of_its_call"] = [r.sid for r in of_call]
    out["recording_of_call"] = client.calls(recording.call_sid).recordings(recording.sid).fetch().sid

    offered = client.available_phone_numbers("US").local.list(area_code="404", limit=2)
    out["offered"] = [n.phone_number for n in offered]
    bought = client.incoming_phone_numbers.create(phone_number=offered[0].phone_number,
                                                  voice_url="https://dialtone.example/twilio/voice")
    updated = client.incoming_phone_numbers(bought.sid).update(voice_url="https://other.example/voice")
    out["bought"] = {"phone_number": bought.phone_number, "voice_url": updated.voice_url}
    out["owned"] = [n.phone_number for n in client.incoming_phone_numbers.list()]
    out["released"] = client.incoming_phone_numbers(bought.sid).delete()

    try:
        client.calls("CA" + "0" * 32).fetch()
        out["missing"] = None
    except TwilioRestException as e:
        out["missing"] = {"status": e.status, "code": e.code}
    return out


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
    elif op == "rest":
        out = rest(req)
    else:
        raise SystemExit(f"unknown op {op}")
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
