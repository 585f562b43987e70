"""A small voice app written with the carrier's official helper library (the `twilio` package),
the kind of app a developer points `dialtone carrier` at. Nobody on the team wrote its TwiML
builder or its signature check, which is the point: it proves the emulator speaks the carrier's
protocol to someone else's code.

    python scripts/twiml_app.py AUTH_TOKEN LOG_FILE

Listens on 127.0.0.1 on a free port and prints `listening on http://127.0.0.1:PORT`. Every request
is checked with RequestValidator (403 when the signature is wrong) and logged to LOG_FILE as one
JSON object a line: {"path", "valid", "params"}.

The call flow: a greeting and a one-key menu; 1 rings two sales numbers at once (recorded, with
leg status callbacks), 2 takes a voicemail, no key rings sales too. After the dial, a goodbye.
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Dial, Gather, VoiceResponse

SALES = ["+15005550101", "+15005550102"]
LEG_EVENTS = "initiated ringing answered completed"


def ring_sales():
    response = VoiceResponse()
    dial = Dial(
        action="/dial-done",
        timeout=10,
        record="record-from-answer",
        recording_status_callback="/recording",
    )
    for number in SALES:
        dial.number(number, status_callback="/leg", status_callback_event=LEG_EVENTS)
    response.append(dial)
    return response


def voice(_params):
    response = VoiceResponse()
    response.say("Thanks for calling the example company.")
    gather = Gather(num_digits=1, action="/menu", timeout=3)
    gather.say("For sales press 1. To leave a message press 2.")
    response.append(gather)
    response.redirect("/menu", method="POST")
    return response


def menu(params):
    if params.get("Digits") == "2":
        response = VoiceResponse()
        response.say("Please leave a message after the tone.")
        response.record(max_length=30, action="/recorded", recording_status_callback="/recording")
        return response
    return ring_sales()


def dial_done(params):
    response = VoiceResponse()
    if params.get("DialCallStatus") != "completed":
        response.say("Sorry, nobody could take your call.")
    response.hangup()
    return response


def recorded(_params):
    response = VoiceResponse()
    response.say("Thank you, goodbye.")
    response.hangup()
    return response


ROUTES = {"/voice": voice, "/menu": menu, "/dial-done": dial_done, "/recorded": recorded}


class App(BaseHTTPRequestHandler):
    validator = None
    log = None
    lock = threading.Lock()

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode()
        params = dict(parse_qsl(body, keep_blank_values=True))
        url = f"http://{self.headers['host']}{self.path}"
        valid = self.validator.validate(url, params, self.headers.get("x-twilio-signature", ""))
        with self.lock:
            self.log.write(json.dumps({"path": self.path, "valid": valid, "params": params}) + "\n")
            self.log.flush()
        if not valid:
            self.send_response(403)
            self.end_headers()
            return
        route = ROUTES.get(self.path)
        xml = str(route(params)) if route else ""
        self.send_response(200)
        if route:
            self.send_header("content-type", "application/xml")
        self.send_header("content-length", str(len(xml.encode())))
        self.end_headers()
        self.wfile.write(xml.encode())

    def log_message(self, *_args):
        pass


def main():
    token, log_path = sys.argv[1], sys.argv[2]
    App.validator = RequestValidator(token)
    App.log = open(log_path, "a", encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), App)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
