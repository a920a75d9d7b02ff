"""Grant each group its permission on every experiment and registered model (mlflow-oidc-auth).

Run by the server venv's python with the server's environment (OIDC_USERS_DB_URI and the rest):
    python oidc_group_grants.py [--check] < {"group": "EDIT", ...}
Each group gets one regex grant ".*" per kind (experiments, registered models) at priority 100; a
grant of another permission is updated. Prints {"changed": bool, "groups": {group: [changes]}};
--check changes nothing and reports what would change. Other grants are left alone.
"""

import json
import sys

REGEX = ".*"
PRIORITY = 100


def main() -> int:
    check = "--check" in sys.argv[1:]
    wanted = json.load(sys.stdin)
    from mlflow_oidc_auth.store import store

    kinds = {
        "experiments": (
            store.list_group_experiment_regex_permissions,
            store.create_group_experiment_regex_permission,
            store.update_group_experiment_regex_permission,
        ),
        "registered_models": (
            store.list_group_registered_model_regex_permissions,
            store.create_group_registered_model_regex_permission,
            store.update_group_registered_model_regex_permission,
        ),
    }
    report = {}
    known = set(store.get_groups()) if hasattr(store, "get_groups") else None
    for group, permission in sorted(wanted.items()):
        changes = []
        if known is not None and group not in known:
            changes.append("group")
            if not check:
                store.populate_groups([group], written_by="mlops.mlflow")
        for kind, (list_grants, create, update) in kinds.items():
            grants = [] if "group" in changes and check else [g for g in list_grants(group) if g.regex == REGEX]
            if not grants:
                changes.append(kind)
                if not check:
                    create(group_name=group, regex=REGEX, priority=PRIORITY, permission=permission)
            elif grants[0].permission != permission or grants[0].priority != PRIORITY:
                changes.append(kind)
                if not check:
                    update(id=grants[0].id, group_name=group, regex=REGEX, priority=PRIORITY, permission=permission)
        if changes:
            report[group] = changes
    print(json.dumps({"changed": bool(report), "groups": report}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
