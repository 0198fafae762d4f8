"""``efistub diff``: what changed between two JSON reports."""

from __future__ import annotations

from .policy import variable_key


def _stable_handoff(report: dict) -> dict:
    """The parts of a hand-off that do not move from run to run (KASLR moves addresses)."""
    h = report.get("handoff") or {}
    out = {"arch": h.get("arch")}
    if "boot_params" in h:
        bp = h["boot_params"]
        out.update(cmdline=bp["cmdline"], ramdisk_size=bp["ramdisk_size"], e820_entries=len(bp["e820"]),
                   secure_boot=bp["secure_boot"])
    if "fdt" in h:
        chosen = h["fdt"]["chosen"]
        out.update(bootargs=chosen.get("bootargs"), chosen=sorted(chosen))
    out["configuration_tables"] = sorted(t["name"] for t in h.get("configuration_tables", []))
    return out if h else {}


def diff(old: dict, new: dict) -> dict:
    """Differences by kind; an empty dict when nothing changed."""
    changes: dict = {}
    for key in ("outcome", "exit_status"):
        if old.get(key) != new.get(key):
            changes[key] = {"old": old.get(key), "new": new.get(key)}
    ou, nu = old["usage"], new["usage"]
    services = {}
    for name in sorted(set(ou["services"]) | set(nu["services"])):
        a, b = ou["services"].get(name), nu["services"].get(name)
        if a is None:
            services[name] = {"added": b}
        elif b is None:
            services[name] = {"gone": a}
        elif a != b:
            services[name] = {"old": a, "new": b}
    if services:
        changes["services"] = services
    for key, old_items, new_items in (
        ("protocols", ou["protocols"], nu["protocols"]),
        ("configuration_tables", ou["configuration_tables"]["installed"], nu["configuration_tables"]["installed"]),
        ("variables", {variable_key(v): v for v in ou["variables"]}, {variable_key(v): v for v in nu["variables"]}),
    ):
        kind = {}
        for item in sorted(set(old_items) | set(new_items)):
            if item not in old_items:
                kind[item] = "added"
            elif item not in new_items:
                kind[item] = "gone"
            elif old_items[item] != new_items[item]:
                kind[item] = {"old": old_items[item], "new": new_items[item]}
        if kind:
            changes[key] = kind
    if set(ou["unimplemented"]) != set(nu["unimplemented"]):
        changes["unimplemented"] = {"added": sorted(set(nu["unimplemented"]) - set(ou["unimplemented"])),
                                    "gone": sorted(set(ou["unimplemented"]) - set(nu["unimplemented"]))}
    oh, nh = _stable_handoff(old), _stable_handoff(new)
    handoff = {k: {"old": oh.get(k), "new": nh.get(k)} for k in sorted(set(oh) | set(nh)) if oh.get(k) != nh.get(k)}
    if handoff:
        changes["handoff"] = handoff
    return changes


def as_text(changes: dict) -> str:
    if not changes:
        return "no changes\n"
    lines = []
    for key in ("outcome", "exit_status"):
        if key in changes:
            lines.append(f"{key}: {changes[key]['old']} -> {changes[key]['new']}")
    for name, change in changes.get("services", {}).items():
        if "added" in change:
            lines.append(f"service added: {name} ({change['added']['count']} calls)")
        elif "gone" in change:
            lines.append(f"service gone: {name}")
        else:
            old, new = change["old"], change["new"]
            if old["count"] != new["count"]:
                lines.append(f"service {name}: {old['count']} -> {new['count']} calls")
            if set(old["statuses"]) != set(new["statuses"]):
                lines.append(f"service {name}: statuses {old['statuses']} -> {new['statuses']}")
    for key, label in (("protocols", "protocol"), ("configuration_tables", "configuration table"),
                       ("variables", "variable")):
        for item, change in changes.get(key, {}).items():
            lines.append(f"{label} {change}: {item}" if isinstance(change, str)
                         else f"{label} {item}: {change['old']} -> {change['new']}")
    if "unimplemented" in changes:
        u = changes["unimplemented"]
        lines += [f"unimplemented service now hit: {n}" for n in u["added"]]
        lines += [f"unimplemented service no longer hit: {n}" for n in u["gone"]]
    for key, change in changes.get("handoff", {}).items():
        lines.append(f"hand-off {key}: {change['old']} -> {change['new']}")
    return "\n".join(lines) + "\n"
