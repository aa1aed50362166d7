"""Demo data for ``favgate serve --demo``: an account, a connected instance, a few messages.

Seeding is idempotent: running it again leaves the same account, instance and messages.
Tokens are stored only as hashes and so cannot be shown again; each run therefore issues
fresh demo tokens, replacing the previous ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from favgate.auth import generate_token, hash_token
from favgate.storage import InstanceStatus, Storage

ACCOUNT = "demo"
INSTANCE = "demo"
CHAT_NUMBER = "5511999999999"
CHAT_JID = f"{CHAT_NUMBER}@s.whatsapp.net"
MESSAGE_ID = "3EB08FCF27E532F1B0F5"


@dataclass(frozen=True, slots=True)
class DemoTokens:
    account: str
    instance: str


def _messages() -> list[dict[str, object]]:
    start = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    texts = ["Hi! Is the order on its way?", "It left the warehouse this morning.", "Great!"]
    ids = [MESSAGE_ID, "3EB0A1B2C3D4E5F60718", "3EB0C0FFEE0000000001"]
    return [
        {
            "id": message_id,
            "chat_jid": CHAT_JID,
            "from_me": index % 2 == 1,
            "timestamp": start + timedelta(minutes=index),
            "text": text,
        }
        for index, (message_id, text) in enumerate(zip(ids, texts, strict=True))
    ]


async def seed(storage: Storage) -> DemoTokens:
    tokens = DemoTokens(account=generate_token(), instance=generate_token())
    await storage.directory.reset_account(ACCOUNT, hash_token(tokens.account))
    await storage.directory.reset_instance(
        INSTANCE, ACCOUNT, InstanceStatus.CONNECTED, hash_token(tokens.instance)
    )
    await storage.messages.upsert_many(INSTANCE, _messages())
    return tokens


def banner(tokens: DemoTokens, base_url: str) -> str:
    """What ``serve --demo`` prints: the tokens and a request to paste."""
    return f"""
favgate demo data is ready.
  account token:  {tokens.account}
  instance token: {tokens.instance}   (instance "{INSTANCE}")

Favorite a chat:
  curl -X POST "{base_url}/api/chat/favorite/{INSTANCE}" \\
    -H "token: {tokens.instance}" -H "Content-Type: application/json" \\
    -d '{{"number": "{CHAT_NUMBER}", "favorite": true}}'

Favorite a message:
  curl -X POST "{base_url}/api/chat/favorite/{INSTANCE}" \\
    -H "token: {tokens.instance}" -H "Content-Type: application/json" \\
    -d '{{"messageId": "{MESSAGE_ID}", "favorite": true}}'

GraphiQL: {base_url}/graphql  (header editor: {{"token": "{tokens.instance}"}})
"""
