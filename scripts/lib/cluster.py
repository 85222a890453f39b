"""What the Python checks of a deployed system use (cluster-rollouts.py):
kubectl in the system's namespace, a user's gRPC client through grpcurl,
and the dead-letter topics' record counts."""
import json
import os
import subprocess
import sys

NAMESPACE = os.environ.get("NAMESPACE", "todo")


def fail(script, message):
    sys.exit(f"{script}: FAIL: {message}")


def kubectl(*args, timeout=300, namespace=NAMESPACE):
    return subprocess.run(["kubectl", "-n", namespace, *args], check=True, capture_output=True,
                          text=True, timeout=timeout).stdout


def token_for(user):
    """A development token for `user`, as the deployment verifies them."""
    return subprocess.run(["target/debug/todo-token", user], check=True, capture_output=True,
                          text=True).stdout.strip()


class Api:
    """One user's calls to one public API (grpcurl, server reflection)."""

    def __init__(self, address, token):
        self.address, self.token = address, token

    def call(self, method, request):
        done = subprocess.run(
            ["grpcurl", "-plaintext", "-max-time", "10", "-H", f"authorization: Bearer {self.token}",
             "-d", json.dumps(request), self.address, method],
            capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip() or done.stdout.strip())
        return json.loads(done.stdout or "{}")

    def pages(self, method, request, field):
        token = ""
        while True:
            page = self.call(method, {**request, "pageSize": 500, "pageToken": token})
            yield from page.get(field, [])
            token = page.get("nextPageToken", "")
            if not token:
                return


def dead_letters(topics=".*-dlq"):
    """Records in the dead-letter topics matching `topics` (the sum of
    their partitions' end offsets), read in the Kafka pod with a heap small
    enough to fit beside the broker."""
    out = kubectl("exec", "kafka-0", "--", "env", "KAFKA_HEAP_OPTS=-Xmx64m", "/opt/kafka/bin/kafka-get-offsets.sh",
                  "--bootstrap-server", "localhost:9092", "--topic", topics, timeout=120)
    return sum(int(line.rsplit(":", 1)[1]) for line in out.split() if line.count(":") == 2)
