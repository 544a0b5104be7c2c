"""`weerbaar users`, `weerbaar web` and `weerbaar evidence`: the review desk's command line."""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path

import click

from .cli import Context, _current_model, _fail, cli

NEW_PASSWORD_ENV = "WEERBAAR_NEW_PASSWORD"


def _new_password() -> str:
    """Read the new password from WEERBAAR_NEW_PASSWORD, else prompt twice; never from an argument."""
    password = os.environ.get(NEW_PASSWORD_ENV)
    if password:
        return password
    try:
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    except click.Abort:
        _fail(f"no password: set {NEW_PASSWORD_ENV} or run this in a terminal to be asked")


@cli.group()
def users() -> None:
    """Manage the review desk's users: admins, reviewers (limited to their officials) and researchers.

    Example:

    \b
        WEERBAAR_NEW_PASSWORD=... weerbaar users add beheer --role admin
        weerbaar users add jdewit --role reviewer --official 3 --official 7
    """


@users.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["admin", "reviewer", "researcher"]))
@click.option("--official", "officials", multiple=True, type=int, help="Official a reviewer may see (repeatable).")
@click.pass_obj
def users_add(obj: Context, name: str, role: str, officials: tuple[int, ...]) -> None:
    """Add a user; the password comes from WEERBAAR_NEW_PASSWORD or a prompt, never from an argument.

    Example:

    \b
        weerbaar users add jdewit --role reviewer --official 3
    """
    from .users import UserError, add_user

    try:
        user = add_user(obj.db, name, role, _new_password(), list(officials))
    except UserError as exc:
        _fail(str(exc))
    click.echo(f"Added {user.role} {user.username} (id {user.id})"
               + (f", officials {', '.join(map(str, user.officials))}" if user.officials else "") + ".")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def users_list(obj: Context, as_json: bool) -> None:
    """List users with their role, officials and whether they are disabled.

    Example:

    \b
        weerbaar users list
    """
    from .users import list_users

    rows = list_users(obj.db)
    if as_json:
        click.echo(json.dumps([{"id": u.id, "username": u.username, "role": u.role, "officials": list(u.officials),
                                "disabled": u.disabled} for u in rows], indent=2))
        return
    for u in rows:
        officials = "all" if u.role == "admin" else ",".join(map(str, u.officials)) or "-"
        click.echo(f"{u.id:>4}  {u.username:<24} {u.role:<10} officials {officials:<20} "
                   f"{'disabled' if u.disabled else 'active'}")


@users.command("disable")
@click.argument("name")
@click.pass_obj
def users_disable(obj: Context, name: str) -> None:
    """Disable a user: no more logins, and their open sessions end.

    Example:

    \b
        weerbaar users disable jdewit
    """
    from .users import UserError, disable_user

    try:
        disable_user(obj.db, name)
    except UserError as exc:
        _fail(str(exc))
    click.echo(f"Disabled {name}.")


@users.command("passwd")
@click.argument("name")
@click.pass_obj
def users_passwd(obj: Context, name: str) -> None:
    """Set a user's password (from WEERBAAR_NEW_PASSWORD or a prompt); their open sessions end.

    Example:

    \b
        weerbaar users passwd jdewit
    """
    from .users import UserError, find_user, set_password

    try:
        find_user(obj.db, name)
        set_password(obj.db, name, _new_password())
    except UserError as exc:
        _fail(str(exc))
    click.echo(f"Password of {name} changed.")


@users.command("assign")
@click.argument("name")
@click.option("--official", "officials", multiple=True, type=int, required=True, help="Official id (repeatable).")
@click.option("--remove", is_flag=True, help="Take these officials away instead.")
@click.pass_obj
def users_assign(obj: Context, name: str, officials: tuple[int, ...], remove: bool) -> None:
    """Give a reviewer more officials to see, or take them away with --remove.

    Example:

    \b
        weerbaar users assign jdewit --official 9
    """
    from .users import UserError, assign_officials

    try:
        user = assign_officials(obj.db, name, list(officials), remove)
    except UserError as exc:
        _fail(str(exc))
    click.echo(f"{user.username} sees officials {', '.join(map(str, user.officials)) or 'none'}.")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int)
@click.pass_obj
def web(obj: Context, host: str, port: int) -> None:
    """Run the review desk web app (set WEERBAAR_WEB_SECRET so sessions survive a restart).

    Behind a reverse proxy that ends HTTPS, set [web] base_url = "https://..." (cookies become Secure) and
    trusted_proxies to the proxy's address, so its X-Forwarded-For and -Proto headers are believed.

    Example:

    \b
        weerbaar web --host 127.0.0.1 --port 8000
    """
    import uvicorn

    from .web import create_app

    settings = obj.settings
    app = create_app(settings, _current_model(settings))
    proxies = settings.web.trusted_proxies
    uvicorn.run(app, host=host, port=port, proxy_headers=bool(proxies),
                forwarded_allow_ips=",".join(proxies) or None, server_header=False, log_level="info")


@cli.command()
@click.argument("mention_ids", nargs=-1, required=True, type=int)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The zip to write.")
@click.option("--by", "made_by", help="Who makes the pack (default: your login name).")
@click.pass_obj
def evidence(obj: Context, mention_ids: tuple[int, ...], output: str, made_by: str | None) -> None:
    """Write an evidence pack for a police report: a PDF, a JSON record and SHA256SUMS in one zip.

    Example:

    \b
        weerbaar evidence 1234 1240 -o aangifte-2026-12-01.zip
    """
    from .evidence import EvidenceError, build_evidence_pack

    settings = obj.settings
    try:
        pack = build_evidence_pack(obj.db, list(mention_ids), made_by or f"cli:{getpass.getuser()}", settings,
                                   _current_model(settings))
    except EvidenceError as exc:
        _fail(str(exc))
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".part")
    temporary.write_bytes(pack)
    temporary.replace(path)
    click.echo(f"Wrote {path}: {len(mention_ids)} mention(s), {len(pack):,} bytes.")
