"""Who a replica is: the labels on everything it ships.

Inside a Serve replica the app, deployment and replica id come from Serve's replica
context and the node id from Ray's runtime context; outside one (a unit test, a plain
Python object) the labels say ``default``, the class name and ``local``, and Ray is
neither started nor looked for.
"""

from __future__ import annotations

from raywatch.config import MonitorConfig
from raywatch.serve.buffer import Labels

__all__ = ["replica_labels"]


def replica_labels(cls_name: str, config: MonitorConfig) -> Labels:
    """The labels of the replica this runs in (``cls_name`` names the deployment outside one)."""
    app, deployment, replica_id, node_id, generation = "default", cls_name, "local", None, None
    try:
        from raywatch.serve.compat import deployment_generation, replica_identity

        ctx_app, ctx_deployment, ctx_replica = replica_identity()
        app = ctx_app or app
        deployment = ctx_deployment or deployment
        replica_id = ctx_replica or replica_id
        generation = deployment_generation()
    except Exception:
        pass
    try:
        import ray

        if ray.is_initialized():  # get_runtime_context() would start a cluster otherwise
            node_id = ray.get_runtime_context().get_node_id()
    except Exception:
        pass
    return Labels(app=app, deployment=deployment, replica_id=str(replica_id), model=config.model,
                  version=config.version, node_id=node_id, generation=generation)
