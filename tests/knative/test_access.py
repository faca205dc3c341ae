"""Service accounts and roles: each part may do what its code does, no more."""

from __future__ import annotations

import re
from pathlib import Path

from knative import manifests

CATALOG = manifests.ROOT / "functions" / "catalog"
# The kubernetes client's method names: <verb>_namespaced_<resource>, called
# or handed to a watch, and what each verb and resource is called in a Role.
CALL = re.compile(
    r"\b(create|read|list|patch|replace|delete_collection|delete)"
    r"_namespaced_([a-z_]+)\b"
)
VERBS = {
    "create": "create",
    "read": "get",
    "list": "list",
    "patch": "patch",
    "replace": "update",
    "delete": "delete",
    "delete_collection": "deletecollection",
}
RESOURCES = {
    "job": ("batch", "jobs"),
    "job_status": ("batch", "jobs/status"),
    "pod": ("", "pods"),
    "pod_log": ("", "pods/log"),
    "event": ("", "events"),
}
Rule = tuple[str, str, str]


def called_by(folder: Path) -> set[Rule]:
    """(apiGroup, resource, verb) for each client call in ``folder``'s code."""
    calls = set()
    for path in folder.rglob("*.py"):
        text = path.read_text()
        assert "_for_all_namespaces(" not in text, f"{path}: a cluster-wide call"
        for verb, resource in CALL.findall(text):
            assert resource in RESOURCES, f"{path} calls {verb}_namespaced_{resource}"
            group, plural = RESOURCES[resource]
            calls.add((group, plural, VERBS[verb]))
            # A watch streams a list call.
            if verb == "list" and "Watch(" in text:
                calls.add((group, plural, "watch"))
    return calls


def allowed(role: manifests.Doc) -> set[Rule]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def bound_to(account: str) -> manifests.Doc:
    """The one Role bound to ``account``, by the one RoleBinding naming it."""
    (binding,) = [
        b
        for b in manifests.of_kind("RoleBinding")
        if any(
            s["kind"] == "ServiceAccount" and s["name"] == account
            for s in b["subjects"]
        )
    ]
    assert binding["roleRef"]["kind"] == "Role"
    return manifests.named("Role", binding["roleRef"]["name"])


def account_of(kind: str, name: str) -> str:
    spec = manifests.named(kind, name)["spec"]
    if kind == "ApiServerSource":
        return str(spec["serviceAccountName"])
    return str(spec["template"]["spec"]["serviceAccountName"])


def test_the_catalog_may_do_exactly_what_its_code_calls() -> None:
    calls = called_by(CATALOG)
    assert ("batch", "jobs", "create") in calls
    assert allowed(bound_to(account_of("Service", "catalog"))) == calls


def test_the_apiserver_source_may_follow_jobs() -> None:
    role = bound_to(account_of("ApiServerSource", "catalog-jobs-source"))
    assert allowed(role) == {("batch", "jobs", v) for v in ("get", "list", "watch")}


def test_nothing_is_granted_cluster_wide() -> None:
    kinds = {doc["kind"] for doc in manifests.documents()}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}


def test_every_account_used_exists_and_only_the_api_users_hold_a_token() -> None:
    used = {
        account_of("Service", d["metadata"]["name"])
        for d in manifests.of_kind("Service")
    }
    used |= {
        account_of(d["kind"], d["metadata"]["name"])
        for d in manifests.of_kind("ContainerSource")
        + manifests.of_kind("ApiServerSource")
    }
    plugin = manifests.config()["NOETL_K8S_SERVICE_ACCOUNT"]
    accounts = {d["metadata"]["name"]: d for d in manifests.of_kind("ServiceAccount")}
    assert used | {plugin} == set(accounts)

    talks_to_the_api = {account_of("Service", "catalog")} | {
        account_of("ApiServerSource", "catalog-jobs-source")
    }
    for name, account in accounts.items():
        token = account.get("automountServiceAccountToken", True)
        assert token == (name in talks_to_the_api), name


def test_the_scan_sees_each_verb_the_code_would_call(tmp_path: Path) -> None:
    (tmp_path / "watcher.py").write_text(
        "jobs = api.read_namespaced_job(name, ns)\n"
        "for event in watch.Watch().stream(api.list_namespaced_job, ns): ...\n"
        "api.delete_collection_namespaced_job(ns)\n"
    )
    assert called_by(tmp_path) == {
        ("batch", "jobs", verb) for verb in ("get", "list", "watch", "deletecollection")
    }
