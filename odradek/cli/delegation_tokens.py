"""`odradek delegation-tokens`: create, list, renew and expire delegation tokens, as Kafka's
`kafka-delegation-tokens` does, with our output style. Tokens are only handed out to a client
that proved who it is (SASL, or a client certificate): pass its settings with --command-config."""

from __future__ import annotations

import argparse
import base64
import binascii
from datetime import datetime, timezone

from odradek.cli import UsageError
from odradek.cli.client_options import add_client_arguments, add_subcommand, run_with_client
from odradek.cli.output import print_json, print_table
from odradek.client import Admin, KafkaClient

__all__ = ["register", "run"]

EXAMPLES = """
  odradek delegation-tokens --command-config alice.properties --create --renewer-principal User:bob
  odradek delegation-tokens --command-config alice.properties --describe
  odradek delegation-tokens --command-config bob.properties --renew --hmac <HMAC> --renew-time-period 86400000
  odradek delegation-tokens --command-config alice.properties --expire --hmac <HMAC>      # now
  # a job then logs in with sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule
  #   required username="<TOKEN ID>" password="<HMAC>" tokenauth="true";
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_subcommand(
        subparsers,
        "delegation-tokens",
        help="create, list, renew and expire delegation tokens",
        description="Delegation tokens (KIP-48) let a job log in as their owner with SCRAM, without the owner's "
        "password. The broker needs delegation.token.secret.key.",
        examples=EXAMPLES,
    )
    actions = parser.add_argument_group("action (exactly one)").add_mutually_exclusive_group(required=True)
    actions.add_argument("--create", action="store_true", help="a token for this client's principal (or --owner-principal)")
    actions.add_argument("--describe", action="store_true", help="the tokens this client may see")
    actions.add_argument("--renew", action="store_true", help="move the expiry of the token --hmac names")
    actions.add_argument("--expire", action="store_true", help="end the token --hmac names")
    parser.add_argument("--renewer-principal", action="append", default=[], metavar="PRINCIPAL",
                        help="with --create: who else may renew it (User:bob); repeatable")
    parser.add_argument("--owner-principal", metavar="PRINCIPAL",
                        help="with --create: the token's owner (needs CreateTokens on that user); with --describe: whose tokens")
    parser.add_argument("--max-life-time-period", type=int, default=-1, metavar="MS",
                        help="with --create: its max lifetime (default -1: the broker's)")
    parser.add_argument("--hmac", help="with --renew and --expire: the token's HMAC, as --create printed it")
    parser.add_argument("--renew-time-period", type=int, default=-1, metavar="MS",
                        help="with --renew: expire this long from now (default -1: the broker's)")
    parser.add_argument("--expiry-time-period", type=int, default=-1, metavar="MS",
                        help="with --expire: expire this long from now (default -1: now)")
    add_client_arguments(parser)
    parser.set_defaults(func=run)


def _hmac(args: argparse.Namespace) -> bytes:
    if not args.hmac:
        raise UsageError("--renew and --expire need --hmac")
    try:
        return base64.b64decode(args.hmac, validate=True)
    except (binascii.Error, ValueError):
        raise UsageError("--hmac must be the base64 HMAC that --create printed") from None


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run(args: argparse.Namespace) -> int:
    if args.create:
        return run_with_client(args, lambda client: create(client, args))
    if args.describe:
        return run_with_client(args, lambda client: describe(client, args))
    hmac = _hmac(args)
    return run_with_client(args, lambda client: change(client, args, hmac))


def _show(tokens, args) -> None:
    if args.output == "json":
        print_json([{"token_id": t.token_id, "hmac": t.password, "owner": t.owner, "requester": t.requester,
                     "renewers": list(t.renewers), "issued": t.issue_ms, "expires": t.expiry_ms, "max": t.max_ms}
                    for t in tokens])
        return
    print_table(["token id", "hmac", "owner", "requester", "renewers", "issued", "expires", "max"],
                [(t.token_id, t.password, t.owner, t.requester, ",".join(t.renewers) or "-", _when(t.issue_ms),
                  _when(t.expiry_ms), _when(t.max_ms)) for t in tokens])


async def create(client: KafkaClient, args) -> int:
    token = await Admin(client).create_delegation_token(args.renewer_principal, args.max_life_time_period,
                                                       args.owner_principal)
    _show([token], args)
    return 0


async def describe(client: KafkaClient, args) -> int:
    owners = [args.owner_principal] if args.owner_principal else None
    _show(await Admin(client).describe_delegation_tokens(owners), args)
    return 0


async def change(client: KafkaClient, args, hmac: bytes) -> int:
    admin = Admin(client)
    if args.renew:
        expiry = await admin.renew_delegation_token(hmac, args.renew_time_period)
    else:
        expiry = await admin.expire_delegation_token(hmac, args.expiry_time_period)
    if args.output == "json":
        print_json({"action": "renewed" if args.renew else "expired", "expires": expiry})
    else:
        print(f"{'Renewed' if args.renew else 'Expired'} the token; it expires at {_when(expiry)}.")
    return 0
