"""Who owns a transaction can be read from a signature.

A function handed a connection (``conn: Conn``) works inside whatever its caller opened:
a transaction, or autocommit, where each statement is its own. It never opens, commits
or rolls back one. A function that takes the pool takes a connection and opens its own
transactions. Route handlers are where a request's unit of work begins: Litestar hands
them the connection, and they may open the transaction on it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "core", "db", "jobs", "providers", "smpp_server", "smsgw")

CONNECTIONS = frozenset({"Conn", "AsyncConnection", "Connection"})
# Types that stand for (one of) the types they wrap.
WRAPPERS = frozenset({"NamedDependency", "Annotated", "Optional", "Union"})
OWNING = frozenset({"transaction", "commit", "rollback"})
ROUTE_DECORATORS = frozenset({"get", "post", "put", "patch", "delete", "route", "UncopiedGuards"})

Function = ast.FunctionDef | ast.AsyncFunctionDef


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def is_connection(annotation: ast.expr) -> bool:
    """``Conn``, ``AsyncConnection[DictRow]``, ``Conn | None``, ``NamedDependency[Conn]``;
    not a pool of them, nor a callable that takes one."""
    match annotation:
        case ast.Constant(value=str(quoted)):
            return is_connection(ast.parse(quoted, mode="eval").body)
        case ast.Name() | ast.Attribute():
            return _name(annotation) in CONNECTIONS
        case ast.BinOp(op=ast.BitOr(), left=left, right=right):
            return is_connection(left) or is_connection(right)
        case ast.Subscript(value=outer, slice=inner):
            if _name(outer) in CONNECTIONS:
                return True
            if _name(outer) not in WRAPPERS:
                return False
            wrapped = inner.elts if isinstance(inner, ast.Tuple) else [inner]
            if _name(outer) == "Annotated":
                wrapped = wrapped[:1]
            return any(is_connection(e) for e in wrapped)
    return False


def connection_parameters(function: Function) -> list[str]:
    args = function.args
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    return [
        arg.arg
        for arg in every
        if arg is not None and arg.annotation is not None and is_connection(arg.annotation)
    ]


def _is_route_handler(function: Function) -> bool:
    return any(
        _name(d.func if isinstance(d, ast.Call) else d) in ROUTE_DECORATORS
        for d in function.decorator_list
    )


def owning_calls(function: Function) -> list[tuple[int, str]]:
    """Where ``function`` (its nested functions included) opens, commits or rolls back."""
    return sorted(
        (node.lineno, node.func.attr)
        for statement in function.body
        for node in ast.walk(statement)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in OWNING
    )


def offenders(source: str, path: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, path)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        params = connection_parameters(node)
        if not params or _is_route_handler(node):
            continue
        for line, call in owning_calls(node):
            found.append(f"{path}:{line} {node.name}({', '.join(params)}) calls .{call}()")
    return found


def test_a_function_handed_a_connection_never_opens_or_ends_a_transaction() -> None:
    found = [
        offence
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for offence in offenders(path.read_text("utf-8"), str(path.relative_to(ROOT)))
    ]
    assert not found, (
        "These functions take a connection and open, commit or roll back a transaction on "
        "it; take the pool instead, or let the caller open the transaction:\n" + "\n".join(found)
    )


EXAMPLE = """
async def direct(conn: Conn) -> None:
    async with conn.transaction():
        pass

async def quoted(conn: "AsyncConnection[DictRow] | None") -> None:
    await conn.commit()

async def wrapped(conn: Optional[Annotated[Conn, "x"]], *, pool: AsyncConnectionPool[Conn]):
    await conn.commit()

async def nested(*, connection: psycopg.AsyncConnection) -> None:
    async def inner() -> None:
        await connection.rollback()

async def owner(pool: AsyncConnectionPool[Conn], on: Callable[[Conn], None]) -> None:
    async with pool.connection() as conn, conn.transaction():
        pass

async def inside(conn: Conn) -> None:
    await conn.execute("SELECT 1")

@post("/x")
async def handler(self, conn: NamedDependency[Conn]) -> None:
    async with conn.transaction():
        pass
"""


def test_the_rule_sees_unions_wrappers_quotes_and_nested_functions() -> None:
    assert [o.split(" ", 1)[1] for o in offenders(EXAMPLE, "example.py")] == [
        "direct(conn) calls .transaction()",
        "quoted(conn) calls .commit()",
        "wrapped(conn) calls .commit()",
        "nested(connection) calls .rollback()",
    ]
