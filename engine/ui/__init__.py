"""``indb ui``: a read-mostly web dashboard over indb's catalog (models, deployments, monitors,
feature sets, jobs, lineage, search), rendered on the server with inline SVG charts: it works
offline and without JavaScript. See :func:`create_app` and :func:`serve`."""

from __future__ import annotations

import ipaddress

from indb.errors import IndbError

__all__ = ["create_app", "serve", "check_binding"]


def create_app(url: str, token: str | None = None, **options):
    from indb.ui.app import create_app as build

    return build(url, token, **options)


def check_binding(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token."""
    if token:
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise IndbError(
            f"indb ui refuses to listen on {host!r} without a token: pass --token or set "
            "INDB_UI_TOKEN (every request then needs it), or keep --host 127.0.0.1"
        )


def serve(
    url: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    root_path: str = "",
    actions: bool = True,
) -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    check_binding(host, token)
    app = create_app(url, token, root_path=root_path, actions=actions)
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False)
