"""The named-check runner of the Python test scripts: each check prints PASS/FAIL with its detail, and finish()
exits non-zero when any failed (so ctest sees it), after every check has run."""
import sys
import traceback

results = []


def check(name, fn):
    try:
        detail = fn()
        results.append((name, True))
        print(f"PASS {name}: {detail or ''}", flush=True)
    except Exception as e:  # noqa: BLE001
        results.append((name, False))
        traceback.print_exc()
        print(f"FAIL {name}: {e}", flush=True)


def finish():
    failed = [n for n, ok in results if not ok]
    if not results:
        failed = ["(no check ran)"]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed" + (f": {failed}" if failed else ""))
    sys.exit(1 if failed else 0)
