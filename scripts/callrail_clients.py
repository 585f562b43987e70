"""Drives dialtone's CallRail-compatible API (/v3) with two third-party CallRail clients, unchanged
but for their base URL, and prints what they read as one JSON document for the Rust test
(crates/dialtone/tests/callrail_v3.rs) to check against the call log.

- callrail-mcp (maintained; checks id shapes: CAL..., COM..., TRK...): offset pages, filters,
  one call with fields=, a call's tags, note, lead status and value updated;
- pycallrail (its models refuse any key they do not know): relative pages following next_page,
  offset pages that repeat page=, every call parsed into its strict Call model, and an update
  through that model (it sends every field, null for those not given: they are cleared).

usage: callrail_clients.py BASE_URL API_KEY DAY (the server's date: callrail-mcp's windows end then)
"""

import json
import sys

import callrail_mcp.server as tools
from callrail_mcp.client import CallRailClient
from pycallrail.callrail import CallRail
from pycallrail.objects.calls import Call

base, key, day = sys.argv[1].rstrip("/") + "/v3/", sys.argv[2], sys.argv[3]
out = {}

# callrail-mcp
client = CallRailClient(api_key=key, base_url=base, max_retries=0)
tools._client = client
out["accounts"] = client.get("a.json")
account = out["accounts"]["accounts"][0]["id"]
out["account"] = client.get(f"a/{account}.json")
everything = {"date_range": "all_time", "per_page": 50}
out["offset_ids"] = [
    c["id"] for c in client.paginate(f"a/{account}/calls.json", everything, items_key="calls")
]
out["missed_ids"] = [
    c["id"]
    for c in client.paginate(
        f"a/{account}/calls.json", {**everything, "answer_status": "missed"}, items_key="calls"
    )
]
listed = json.loads(
    tools.list_calls(
        account_id=account,
        answer_status="answered",
        start_date=day,
        end_date=day,
        fields="first_call,source,company_id,tracker_id,formatted_duration,call_type",
    )
)
out["answered"] = listed
first = out["offset_ids"][-1]
out["shown"] = json.loads(
    tools.get_call(first, account_id=account, fields="first_call,call_type,routing,flow_path")
)

# Updates: the newest call, through callrail-mcp's tool, then its client with append_tags.
target = out["offset_ids"][0]
out["updated"] = json.loads(
    tools.update_call(
        target, account_id=account, tags=["New Client"], note="call back", lead_status="good_lead"
    )
)
out["appended"] = client.put(
    f"a/{account}/calls/{target}.json", {"tags": ["VIP"], "append_tags": True, "value": "$1,250.5"}
)
out["after_mcp"] = json.loads(
    tools.get_call(target, account_id=account, fields="tags,note,value,lead_status,formatted_value")
)

# pycallrail
api = CallRail(key)
api.BASE_URL = base
pyc_account = api.list_accounts()[0]
out["pycallrail_account"] = pyc_account.id
relative = pyc_account.list_calls(fields="first_call,source,company_id") or []
out["relative"] = [
    {"id": c.id, "first_call": c.first_call, "answered": c.answered, "start_time": str(c.start_time)}
    for c in relative
]
offset = pyc_account.list_calls(pagination_type="OFFSET") or []
out["pycallrail_offset_ids"] = [c.id for c in offset]

# An update through pycallrail's model (its get_call is broken against any server; its private
# reader is the workaround), then the call read back.
shown = api._get(
    endpoint=f"a/{pyc_account.id}",
    path=f"calls/{target}.json",
    params={"fields": "tags,note"},
    pagination_type="NONE",
)
Call.from_json(api, pyc_account.id, shown).update(
    tags=["Callback"], append_tags=True, note="left a message"
)
out["after_pycallrail"] = client.get(
    f"a/{account}/calls/{target}.json", {"fields": "tags,note,value,lead_status"}
)

print(json.dumps(out))
