"""`odradek users`: SCRAM users, as `kafka-configs --entity-type users --add-config 'SCRAM-SHA-512=[...]'`
manages them, with our output style. The password is salted and hashed here; only the salted
password travels, and nothing is printed of it."""

from __future__ import annotations

import argparse
import getpass
import sys

from odradek.cli import UsageError
from odradek.cli.client_options import add_client_arguments, add_subcommand, run_with_client
from odradek.cli.output import print_json, print_table
from odradek.client import Admin, KafkaClient
from odradek.security.scram import DEFAULT_ITERATIONS, MAX_ITERATIONS, MECHANISMS, MIN_ITERATIONS

__all__ = ["register", "run"]

EXAMPLES = """
  odradek users --add alice --mechanism SCRAM-SHA-512          # asks for the password
  echo "$PASSWORD" | odradek users --add alice --password-stdin
  odradek users --add bob --mechanism SCRAM-SHA-256 --iterations 8192 --password-stdin < secret.txt
  odradek users --list
  odradek users --delete alice --mechanism SCRAM-SHA-512
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_subcommand(
        subparsers,
        "users",
        help="add, list and delete SCRAM users",
        description="Add, list and delete the SCRAM credentials clients log in with (SASL SCRAM-SHA-256/512). "
        "Needs Alter (add, delete) or Describe (list) on the cluster when ACLs are on.",
        examples=EXAMPLES,
    )
    actions = parser.add_argument_group("action (exactly one)").add_mutually_exclusive_group(required=True)
    actions.add_argument("--add", metavar="USER", help="create or replace USER's credential")
    actions.add_argument("--delete", metavar="USER", help="remove USER's credential for --mechanism")
    actions.add_argument("--list", action="store_true", help="users and their mechanisms")
    parser.add_argument("--mechanism", default="SCRAM-SHA-512", type=str.upper, choices=sorted(MECHANISMS),
                        help="default SCRAM-SHA-512")
    parser.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS,
                        help=f"{MIN_ITERATIONS}-{MAX_ITERATIONS} (default {DEFAULT_ITERATIONS})")
    parser.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    add_client_arguments(parser)
    parser.set_defaults(func=run)


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass(f"Password for {args.add}: ")
    else:
        raise UsageError("no terminal to ask the password on: pass --password-stdin and the password on stdin")
    if not password:
        raise UsageError("the password is empty")
    return password


def run(args: argparse.Namespace) -> int:
    if args.add is not None:
        if not MIN_ITERATIONS <= args.iterations <= MAX_ITERATIONS:
            raise UsageError(f"--iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}")
        password = _password(args)
        return run_with_client(args, lambda client: alter(client, args, [(args.add, args.mechanism, password, args.iterations)], []))
    if args.delete is not None:
        return run_with_client(args, lambda client: alter(client, args, [], [(args.delete, args.mechanism)]))
    return run_with_client(args, lambda client: list_users(client, args))


async def alter(client: KafkaClient, args, upsertions, deletions) -> int:
    results = await Admin(client).alter_scram_users(upsertions, deletions)
    for error in results.values():
        if error is not None:
            raise error
    user = args.add if args.add is not None else args.delete
    done = "Set" if args.add is not None else "Deleted"
    if args.output == "json":
        print_json({"user": user, "mechanism": args.mechanism, "action": done.lower()})
    else:
        print(f"{done} the {args.mechanism} credential of user {user}.")
    return 0


async def list_users(client: KafkaClient, args) -> int:
    described = await Admin(client).describe_scram_users()
    rows = sorted((user, mechanism, iterations) for user, credentials in described.items()
                  if not isinstance(credentials, Exception) for mechanism, iterations in credentials)
    if args.output == "json":
        print_json([{"user": u, "mechanism": m, "iterations": i} for u, m, i in rows])
    else:
        print_table(["user", "mechanism", "iterations"], rows)
    return 0
