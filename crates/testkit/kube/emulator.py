"""A Kubernetes API server stand-in for Simian's tests, on 127.0.0.1.

No real kube-apiserver can run on the machines the tests run on. This is kmock's
KubernetesEmulator (PyPI: an in-memory object store behind the Kubernetes REST paths, with
real list, get, create, patch and delete), plus the smallest faithful versions of what it
lacks and the provider uses:

- pods/eviction: 404 for a missing pod; 429 with the API server's wording and the budget's
  name when a PodDisruptionBudget in the namespace selects the pod and its
  status.disruptionsAllowed is 0; otherwise the pod is deleted and 201 Success returned;
- delete with a UID precondition: 409 Conflict when the pod's UID differs;
- errors with the API server's reasons (`NotFound`, `AlreadyExists`), which clients match on,
  where kmock words its own.

Like kmock itself it runs no controllers and ignores label selectors: the tests play the
ReplicaSet (they create the pods), and the provider filters on its side too.

Usage: python3 emulator.py PORT (0: any); prints "ready PORT" once it serves.
"""

import asyncio
import json
import sys

import aiohttp.web
import kmock

RESOURCES = [
    "v1/pods",
    "v1/nodes",
    "v1/events",
    "apps/v1/replicasets",
    "policy/v1/poddisruptionbudgets",
    "networking.k8s.io/v1/networkpolicies",
]


def status(code, reason, message, causes=()):
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 400 else "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if causes:
        body["details"] = {"causes": [{"reason": "DisruptionBudget", "message": m} for m in causes]}
    return aiohttp.web.Response(
        status=code, text=json.dumps(body), content_type="application/json"
    )


class Emulator(kmock.KubernetesEmulator):
    async def _render_error(self, exc):
        if isinstance(exc, kmock.KubernetesError) and exc.status in (404, 409):
            reason = "NotFound" if exc.status == 404 else "AlreadyExists"
            return status(exc.status, reason, exc.message or reason)
        return await super()._render_error(exc)

    def _live(self, plural, namespace, name=None):
        for (resource, ns, n), obj in list(self._objects.items()):
            if resource.plural == plural and ns == namespace and (name is None or n == name):
                if not obj.deleted:
                    yield (resource, ns, n), obj

    async def _handle(self, request):
        res = request.resource
        if res is not None and res.plural == "pods" and request.subresource == "eviction":
            return self._evict(request)
        if (
            res is not None
            and res.plural == "pods"
            and request.method == kmock.method.DELETE
            and request.name is not None
        ):
            wanted = ((request.data or {}).get("preconditions") or {}).get("uid")
            for _, obj in self._live("pods", request.namespace, request.name):
                uid = obj.raw.get("metadata", {}).get("uid")
                if wanted and uid != wanted:
                    return status(
                        409,
                        "Conflict",
                        f'Precondition failed: UID in precondition: {wanted}, UID in object meta: {uid}',
                    )
        return await super()._handle(request)

    def _evict(self, request):
        found = list(self._live("pods", request.namespace, request.name))
        if not found:
            return status(404, "NotFound", f'pods "{request.name}" not found')
        key, pod = found[0]
        labels = pod.raw.get("metadata", {}).get("labels", {}) or {}
        for _, pdb in self._live("poddisruptionbudgets", request.namespace):
            spec = pdb.raw.get("spec", {})
            match = (spec.get("selector") or {}).get("matchLabels") or {}
            if all(labels.get(k) == v for k, v in match.items()):
                st = pdb.raw.get("status", {})
                if int(st.get("disruptionsAllowed", 0)) <= 0:
                    name = pdb.raw["metadata"]["name"]
                    return status(
                        429,
                        "TooManyRequests",
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        [
                            f"The disruption budget {name} needs {st.get('desiredHealthy', 0)} "
                            f"healthy pods and has {st.get('currentHealthy', 0)} currently"
                        ],
                    )
        self._objects[key].delete()
        return status(201, "", "")


async def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    async with Emulator() as k, kmock.Server(k, port=port) as server:
        for r in RESOURCES:
            k.resources[r] = {}
        print("ready", server.port, flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
