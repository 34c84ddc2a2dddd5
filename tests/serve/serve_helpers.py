"""Importable helpers for the serve tests (extractor import paths, deployments)."""


def features(x, scale=1):
    return {"x": x, "scaled": x * scale}
