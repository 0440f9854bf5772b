"""Verifies webhook messages with the official Standard Webhooks library.

Reads {"secret": "whsec_...", "messages": [{"id", "timestamp", "signature",
"body"}]} on standard input; prints one line per message that does not
verify and exits 1 if any, 0 when all do.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook

given = json.load(sys.stdin)
webhook = Webhook(given["secret"])
failed = 0
for message in given["messages"]:
    headers = {
        "webhook-id": message["id"],
        "webhook-timestamp": message["timestamp"],
        "webhook-signature": message["signature"],
    }
    try:
        webhook.verify(message["body"], headers)
    except Exception as error:  # the library raises its own WebhookVerificationError
        failed += 1
        print(f"{message['id']}: {error}")
sys.exit(1 if failed else 0)
