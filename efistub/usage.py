"""Usage: which services, protocols, configuration tables and variables a run used.

Computed from the call records alone, so a report read back from JSON gives the
same usage. Configuration tables a guest only reads are not visible (it reads them
from memory, without a service call); tables it installs and tables present at the
hand-off are.
"""

from __future__ import annotations

from collections import Counter, defaultdict

# service -> the argument that names a protocol GUID, and what the call does with it
PROTOCOL_ARGS = {
    "HandleProtocol": ("Protocol", "opened"),
    "OpenProtocol": ("Protocol", "opened"),
    "CloseProtocol": ("Protocol", "closed"),
    "OpenProtocolInformation": ("Protocol", "looked_up"),
    "LocateProtocol": ("Protocol", "looked_up"),
    "LocateHandle": ("Protocol", "looked_up"),
    "LocateHandleBuffer": ("Protocol", "looked_up"),
    "LocateDevicePath": ("Protocol", "looked_up"),
    "InstallProtocolInterface": ("Protocol", "installed"),
    "UninstallProtocolInterface": ("Protocol", "uninstalled"),
    "ReinstallProtocolInterface": ("Protocol", "installed"),
    "RegisterProtocolNotify": ("Protocol", "looked_up"),
}
MULTIPLE = {"InstallMultipleProtocolInterfaces": "installed", "UninstallMultipleProtocolInterfaces": "uninstalled"}
VARIABLE_SERVICES = {"GetVariable": "reads", "SetVariable": "writes"}


def usage(calls: list[dict], handoff: dict | None = None) -> dict:
    """The usage section of a report, from its calls (as dicts) and its hand-off."""
    services: dict[str, dict] = {}
    protocols: dict[str, Counter] = defaultdict(Counter)
    tables_installed: dict[str, Counter] = defaultdict(Counter)
    variables: dict[tuple, dict] = {}
    unimplemented = set()
    for call in calls:
        name, args, status = call["service"], call.get("args", {}), call.get("status")
        entry = services.setdefault(name, {"count": 0, "statuses": Counter()})
        entry["count"] += 1
        entry["statuses"][status if status is not None else "(no status)"] += 1
        if call.get("unimplemented"):
            unimplemented.add(name)
        if name in PROTOCOL_ARGS:
            arg, action = PROTOCOL_ARGS[name]
            if args.get(arg):
                protocols[args[arg]][action] += 1
        elif name in MULTIPLE:
            for guid in args.get("Protocols", []):
                protocols[guid][MULTIPLE[name]] += 1
        elif name == "InstallConfigurationTable" and args.get("Guid"):
            tables_installed[args["Guid"]]["deleted" if not args.get("Table") else "installed"] += 1
        elif name in VARIABLE_SERVICES and args.get("VariableName") is not None:
            key = (args["VariableName"], args.get("VendorGuid"))
            v = variables.setdefault(key, {"name": key[0], "vendor": key[1], "reads": 0, "writes": 0,
                                           "attributes": None, "sizes": [], "statuses": Counter()})
            v[VARIABLE_SERVICES[name]] += 1
            v["statuses"][status] += 1
            if name == "SetVariable":
                v["attributes"] = args.get("Attributes")
                v["sizes"].append(args.get("DataSize"))
    present = [t["name"] for t in (handoff or {}).get("configuration_tables", [])]
    return {
        "services": {n: {"count": e["count"], "statuses": dict(e["statuses"])} for n, e in sorted(services.items())},
        "protocols": {g: dict(c) for g, c in sorted(protocols.items())},
        "configuration_tables": {"installed": {g: dict(c) for g, c in sorted(tables_installed.items())},
                                 "present_at_handoff": present},
        "variables": [dict(v, statuses=dict(v["statuses"])) for _, v in sorted(variables.items(), key=lambda i: str(i[0]))],
        "unimplemented": sorted(unimplemented),
    }
