"""Render is a plugin: the core never imports it, it never imports the dev tools (they add
`opsloop render fake` to its command group as a plugin of their own), and its modules import
each other without a cycle.

Every import statement counts, lazy ones inside functions too (import-linter counts them the
same way): a lazy import hides a dependency from the reader, not from the process.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from opsloop.render.reference import project_root

ROOT = project_root()
PACKAGE = ROOT / "opsloop"
PLUGIN, DEVTOOLS = "opsloop.render", "opsloop.devtools"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, relative imports resolved, at any depth of the file."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # `from pkg import module`
    return found


def graph() -> dict[str, set[str]]:
    """Module -> the opsloop modules it imports (`from m import name`: `m.name` when a module, else `m`)."""
    raw = {module_name(path): imports_of(path) for path in PACKAGE.rglob("*.py")}
    return {m: {t if t in raw else t.rpartition(".")[0] for t in targets if t.startswith("opsloop")} for m, targets in raw.items()}


def inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_core_never_imports_the_plugin_or_the_dev_tools() -> None:
    wrong = sorted(
        (module, target)
        for module, targets in graph().items()
        if not inside(module, PLUGIN) and not inside(module, DEVTOOLS)
        for target in targets
        if inside(target, PLUGIN) or inside(target, DEVTOOLS)
    )
    assert wrong == []


def test_the_plugin_never_imports_the_dev_tools() -> None:
    wrong = sorted(
        (module, target) for module, targets in graph().items() if inside(module, PLUGIN) for target in targets if inside(target, DEVTOOLS)
    )
    assert wrong == []


def test_the_plugin_has_no_import_cycle() -> None:
    modules = graph()
    edges = {m: {t for t in ts if t in modules and t != m} for m, ts in modules.items() if inside(m, PLUGIN)}
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = 1
        for target in sorted(edges.get(module, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target] if target in path else [module, target]
            if target in edges and target not in state and (cycle := visit(target, [*path, target])):
                return cycle
        state[module] = 2
        return None

    cycles = [cycle for module in sorted(edges) if module not in state and (cycle := visit(module, [module]))]
    assert cycles == []


def test_a_process_that_never_asks_for_plugins_loads_no_render_code() -> None:
    """The runtime, the API app and the task core import cleanly with Render absent from memory."""
    code = (
        "import sys\n"
        "import opsloop.backend.runtime, opsloop.backend.api.app, opsloop.backend.tasks.dispatcher\n"
        "print(sorted(m for m in sys.modules if m.startswith(('opsloop.render', 'opsloop.devtools'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_the_plugin_list_names_render_and_the_local_render_by_import_string() -> None:
    from opsloop.backend import plugins
    from opsloop.devtools.render_fake.plugin import plugin as fake_tool
    from opsloop.render.plugin import plugin as render

    assert plugins.INSTALLED.index("opsloop.render.plugin:plugin") < plugins.INSTALLED.index("opsloop.devtools.render_fake.plugin:plugin")
    assert plugins.installed()[:2] == (render, fake_tool)
