"""Policies: what a run may use, for CI checks (``efistub check``, ``efistub policy``).

A policy is a TOML file::

    outcome = "handoff"
    services = ["AllocatePages", "ExitBootServices", ...]
    protocols = ["EFI_LOADED_IMAGE_PROTOCOL_GUID", ...]
    configuration_tables = ["LINUX_EFI_BOOT_MEMMAP_GUID", ...]
    variables = ["EFI_GLOBAL_VARIABLE/SecureBoot", ...]

A run stays inside the policy when every service it called, protocol it used,
configuration table it installed and variable it read or wrote is listed, and it
reaches the expected outcome. A missing list allows nothing of its kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS = (("services", "service"), ("protocols", "protocol"), ("configuration_tables", "configuration table"),
         ("variables", "variable"))


@dataclass
class Policy:
    outcome: str = "handoff"
    services: list[str] = field(default_factory=list)
    protocols: list[str] = field(default_factory=list)
    configuration_tables: list[str] = field(default_factory=list)
    variables: list[str] = field(default_factory=list)


def variable_key(variable: dict) -> str:
    return f"{variable['vendor']}/{variable['name']}"


def used(usage: dict) -> dict[str, list[str]]:
    """What a run used, by policy list."""
    return {
        "services": sorted(usage["services"]),
        "protocols": sorted(usage["protocols"]),
        "configuration_tables": sorted(usage["configuration_tables"]["installed"]),
        "variables": sorted(variable_key(v) for v in usage["variables"]),
    }


def from_report(report: dict) -> Policy:
    return Policy(outcome=report["outcome"], **used(report["usage"]))


def load(path: str) -> Policy:
    """Read a policy file; ValueError says what is wrong with it."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    with open(path, "rb") as f:
        try:
            data = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"not valid TOML: {e}") from None
    known = {"outcome"} | {key for key, _ in KINDS}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)} (known: {sorted(known)})")
    for key, _ in KINDS:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{key} must be a list of strings")
    outcome = data.get("outcome", "handoff")
    from .report import OUTCOMES

    if outcome not in OUTCOMES:
        raise ValueError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    return Policy(outcome=outcome, **{key: data.get(key, []) for key, _ in KINDS})


def violations(policy: Policy, report: dict) -> list[str]:
    """One line per way the run left the policy; empty when it stayed inside."""
    out = []
    if report["outcome"] != policy.outcome:
        out.append(f"outcome: {report['outcome']}, expected {policy.outcome}")
    for key, label in KINDS:
        allowed = set(getattr(policy, key))
        for item in used(report["usage"])[key]:
            if item not in allowed:
                out.append(f"not allowed: {label} {item}")
    return out


def to_toml(policy: Policy, comment: str = "") -> str:
    def array(items):
        if not items:
            return "[]"
        return "[\n" + "".join(f'    "{item}",\n' for item in items) + "]"

    lines = [f"# {line}" for line in comment.splitlines()] if comment else []
    lines.append(f'outcome = "{policy.outcome}"')
    for key, _ in KINDS:
        lines.append(f"{key} = {array(getattr(policy, key))}")
    return "\n".join(lines) + "\n"
