"""Extracts from the carrier's published OpenAPI description of its 2010 API the part the
emulator's conformance tests check against: the operations `dialtone carrier` serves and the
schemas they refer to, without the examples.

  python3 scripts/carrier-spec.py FULL_SPEC.json COMMIT > crates/dialtone-carrier/tests/spec/twilio_api_v2010.json

FULL_SPEC.json is `spec/json/twilio_api_v2010.json` of https://github.com/twilio/twilio-oai at
COMMIT (MIT licence: crates/dialtone-carrier/tests/spec/LICENSE). Run it again, with a newer
commit, to check the emulator against a newer description.
"""
import json
import re
import sys

BASE = "/2010-04-01/Accounts/{AccountSid}"
# (path, methods) the emulator serves.
SERVED = [
    ("/Calls.json", ["get"]),
    ("/Calls/{Sid}.json", ["get"]),
    ("/Calls/{CallSid}/Recordings.json", ["get"]),
    ("/Calls/{CallSid}/Recordings/{Sid}.json", ["get"]),
    ("/Recordings.json", ["get"]),
    ("/Recordings/{Sid}.json", ["get", "delete"]),
    ("/IncomingPhoneNumbers.json", ["get", "post"]),
    ("/IncomingPhoneNumbers/{Sid}.json", ["get", "post", "delete"]),
    ("/AvailablePhoneNumbers/{CountryCode}/Local.json", ["get"]),
    ("/AvailablePhoneNumbers/{CountryCode}/TollFree.json", ["get"]),
]


def strip_examples(node):
    if isinstance(node, dict):
        return {k: strip_examples(v) for k, v in node.items() if k not in ("examples", "example")}
    if isinstance(node, list):
        return [strip_examples(v) for v in node]
    return node


def refs(node):
    return set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(node)))


def main():
    full = json.load(open(sys.argv[1]))
    commit = sys.argv[2]
    paths = {}
    for path, methods in SERVED:
        item = full["paths"][BASE + path]
        paths[BASE + path] = {m: strip_examples(item[m]) for m in methods}
        if "servers" in item:
            paths[BASE + path]["servers"] = item["servers"]
    schemas, todo = {}, refs(paths)
    while todo:
        name = todo.pop()
        if name in schemas:
            continue
        schemas[name] = strip_examples(full["components"]["schemas"][name])
        todo |= refs(schemas[name]) - set(schemas)
    out = {
        "openapi": full["openapi"],
        "info": {
            **full["info"],
            "x-dialtone-source": {
                "repository": "https://github.com/twilio/twilio-oai",
                "path": "spec/json/twilio_api_v2010.json",
                "commit": commit,
                "extract": "scripts/carrier-spec.py: the operations the emulator serves, their schemas, no examples",
            },
        },
        "servers": full.get("servers", []),
        "paths": paths,
        "components": {
            "securitySchemes": full["components"].get("securitySchemes", {}),
            "schemas": dict(sorted(schemas.items())),
        },
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")


main()
