"""`opsloop config doctor`: every service's configuration report, the same as `/config/validate`."""

from __future__ import annotations

import argparse
import json

from opsloop.backend.config import SERVICES, validate_config


def run(args: argparse.Namespace) -> int:
    services = [args.service] if args.service else list(SERVICES)
    reports = [validate_config(s) for s in services]
    if args.json:
        print(json.dumps([r.as_json() for r in reports], indent=2))
    else:
        for report in reports:
            print(f"{report.service}: {'ok' if report.ok else 'ERROR'}")
            for key, state in report.required.items():
                print(f"  required  {key:<36} {state}")
            for key, state in report.optional.items():
                print(f"  optional  {key:<36} {state}")
            if report.errors:
                print("  problems:")
                print(report.summary().replace("  ", "    ", 1) if len(report.errors) == 1 else report.summary())
    return 0 if all(r.ok for r in reports) else 1
