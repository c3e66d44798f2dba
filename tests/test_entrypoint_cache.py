"""The on-disk cache of the entry-point scan (portable.plugin.entrypoints): hits, and invalidation
by
installs, uninstalls and edits; unsafe or broken cache files are ignored."""

from __future__ import annotations

import ast
import importlib
import itertools
import os
import shutil
import sys
import textwrap
import time

import pytest

from portable.plugin import entrypoints
from portable.plugin.registry import make_registry

_past = itertools.count(1)


def settle(*paths):
    """Give paths a distinct modification time well in the past (an install long ago), so a
    scan of them may be cached (see entrypoints.RACY_NS)."""
    stamp = time.time_ns() - 3600 * 10**9 + next(_past) * 10**6
    for p in paths:
        os.utime(p, ns=(stamp, stamp))


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "cache_plugin_a.py").write_text(
        textwrap.dedent("""
        from portable import hookimpl, Profile

        class Sub:
            @staticmethod
            @hookimpl
            def portable_profiles():
                return [Profile(name="from-a", description="a", dropins={})]
        """)
    )
    (site / "cache_plugin_b.py").write_text(
        textwrap.dedent("""
        from portable import hookimpl, Profile

        @hookimpl
        def portable_profiles():
            return [Profile(name="from-b", description="b", dropins={})]
        """)
    )
    # Only this directory and the standard library: other entries (the checkout, while being
    # edited) have recent times, and a scan of recently changed entries is never cached.
    stdlib = [p for p in sys.path if p and p.startswith(sys.base_prefix)]
    monkeypatch.setattr(sys, "path", [str(site), *stdlib])
    importlib.invalidate_caches()
    monkeypatch.setenv(entrypoints.ENV_CACHE_DIR, str(tmp_path / "cache"))
    for var in ("PORTABLE_SERVICES_NO_PLUGINS", "PORTABLE_SERVICES_DISABLE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    return site


def install(site, dist, version, entries):
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(
        "[portable]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items())
    )
    return info


def names(eps):
    return [(e.name, e.value, e.dist, e.version) for e in eps]


def ours(eps):
    return [e for e in names(eps) if e[0].startswith("cache-")]


def forbid_scan(monkeypatch):
    def scan(group):
        raise AssertionError("scanned although the cache is valid")

    monkeypatch.setattr(entrypoints, "scan", scan)


def test_a_valid_cache_is_used_without_scanning(site, monkeypatch):
    info = install(site, "dist-a", "1.0", {"cache-a": "cache_plugin_a:Sub [extra]"})
    settle(info / "entry_points.txt", info, site)
    first = entrypoints.find("portable", cache=True)
    assert ours(first) == [("cache-a", "cache_plugin_a:Sub [extra]", "dist-a", "1.0")]
    path = entrypoints.cache_file("portable")
    assert path is not None and path.is_file()
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    forbid_scan(monkeypatch)
    assert names(entrypoints.find("portable", cache=True)) == names(first)


def test_same_result_as_importlib_metadata(site):
    from importlib.metadata import entry_points

    info = install(site, "dist-a", "1.0", {"cache-a": "cache_plugin_a:Sub"})
    settle(info / "entry_points.txt", info, site)
    expected = sorted(
        (e.name, e.value, e.dist.name, e.dist.version) for e in entry_points(group="portable")
    )
    assert names(entrypoints.find("portable", cache=True)) == expected  # scanned, then written
    assert names(entrypoints.find("portable", cache=True)) == expected  # from the cache


def test_install_and_uninstall_are_noticed(site, monkeypatch):
    a = install(site, "dist-a", "1.0", {"cache-a": "cache_plugin_a:Sub"})
    settle(a / "entry_points.txt", a, site)
    assert [e[0] for e in ours(entrypoints.find("portable", cache=True))] == ["cache-a"]
    # pip install: a new *.dist-info directory changes the site directory's time
    b = install(site, "dist-b", "2.0", {"cache-b": "cache_plugin_b"})
    assert [e[0] for e in ours(entrypoints.find("portable", cache=True))] == [
        "cache-a",
        "cache-b",
    ]
    settle(b / "entry_points.txt", b, site)
    assert [e[0] for e in ours(entrypoints.find("portable", cache=True))] == [
        "cache-a",
        "cache-b",
    ]
    # pip uninstall
    shutil.rmtree(a)
    settle(site)
    assert [e[0] for e in ours(entrypoints.find("portable", cache=True))] == ["cache-b"]
    forbid_scan(monkeypatch)
    assert [e[0] for e in ours(entrypoints.find("portable", cache=True))] == ["cache-b"]


def test_an_edited_entry_points_file_is_noticed(site):
    a = install(site, "dist-a", "1.0", {"cache-a": "cache_plugin_a:Sub"})
    settle(a / "entry_points.txt", a, site)
    entrypoints.find("portable", cache=True)
    site_time = site.stat().st_mtime_ns
    (a / "entry_points.txt").write_text("[portable]\ncache-renamed = cache_plugin_a:Sub\n")
    settle(a / "entry_points.txt")
    assert site.stat().st_mtime_ns == site_time  # only the file changed
    assert [e[0] for e in ours(entrypoints.find("portable", cache=True))] == ["cache-renamed"]


def test_a_scan_of_fresh_changes_is_not_cached(site):
    install(site, "dist-a", "1.0", {"cache-a": "cache_plugin_a:Sub"})  # just now
    entrypoints.find("portable", cache=True)
    path = entrypoints.cache_file("portable")
    assert path is not None and not path.exists()


@pytest.mark.parametrize("what", ["file", "directory"])
def test_a_cache_others_can_write_is_ignored(site, what):
    a = install(site, "dist-a", "1.0", {"cache-a": "cache_plugin_a:Sub"})
    settle(a / "entry_points.txt", a, site)
    entrypoints.find("portable", cache=True)
    path = entrypoints.cache_file("portable")
    assert path is not None
    data = ast.literal_eval(path.read_text())
    data["entry_points"] = [{"name": "evil", "value": "os:system", "dist": "", "version": ""}]
    path.write_text(repr(data))
    (path if what == "file" else path.parent).chmod(0o666 if what == "file" else 0o777)
    assert [e[0] for e in ours(entrypoints.find("portable", cache=True))] == ["cache-a"]
    assert "evil" not in [e.name for e in entrypoints.find("portable", cache=True)]


def test_a_broken_cache_means_a_scan(site):
    a = install(site, "dist-a", "1.0", {"cache-a": "cache_plugin_a:Sub"})
    settle(a / "entry_points.txt", a, site)
    path = entrypoints.cache_file("portable")
    assert path is not None
    path.parent.mkdir(parents=True)
    for garbage in ("{not python", "[]", "{'format': 1}", repr({"format": 99}), "(" * 500, "\xff"):
        path.write_bytes(garbage.encode("latin-1"))  # the last one: not UTF-8
        assert [e[0] for e in ours(entrypoints.find("portable", cache=True))] == ["cache-a"]
    assert ast.literal_eval(path.read_text())["format"] == entrypoints.FORMAT  # rewritten


def test_an_unwritable_cache_directory_is_no_error(site, tmp_path, monkeypatch):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv(entrypoints.ENV_CACHE_DIR, str(blocker / "cache"))
    a = install(site, "dist-a", "1.0", {"cache-a": "cache_plugin_a:Sub"})
    settle(a / "entry_points.txt", a, site)
    assert [e[0] for e in ours(entrypoints.find("portable", cache=True))] == ["cache-a"]


def test_disabled_with_an_empty_directory_setting(site, monkeypatch):
    monkeypatch.setenv(entrypoints.ENV_CACHE_DIR, "")
    assert entrypoints.cache_file("portable") is None
    a = install(site, "dist-a", "1.0", {"cache-a": "cache_plugin_a:Sub"})
    settle(a / "entry_points.txt", a, site)
    assert [e[0] for e in ours(entrypoints.find("portable", cache=True))] == ["cache-a"]


def test_without_cache_nothing_is_written(site):
    a = install(site, "dist-a", "1.0", {"cache-a": "cache_plugin_a:Sub"})
    settle(a / "entry_points.txt", a, site)
    entrypoints.find("portable")
    path = entrypoints.cache_file("portable")
    assert path is not None and not path.parent.exists()


def test_registry_loads_plugins_from_the_cache(site, tmp_path, monkeypatch):
    a = install(site, "dist-a", "1.0", {"cache-a": "cache_plugin_a:Sub"})
    b = install(site, "dist-b", "2.0", {"cache-b": "cache_plugin_b"})
    settle(a / "entry_points.txt", b / "entry_points.txt", a, b, site)
    make_registry(root=tmp_path, cache=True)
    forbid_scan(monkeypatch)
    reg = make_registry(root=tmp_path, cache=True)
    records = {p.name: p for p in reg.plugins}
    assert records["cache-a"].status == "active" and records["cache-a"].version == "1.0"
    assert records["cache-b"].distribution == "dist-b"
    profiles = reg.profiles()
    assert profiles["from-a"].plugin == "cache-a" and profiles["from-b"].plugin == "cache-b"


def test_entry_point_load_follows_attributes():
    ep = entrypoints.EntryPoint(name="x", value="os.path : join [extra1, extra2]")
    assert ep.load() is os.path.join
    assert entrypoints.EntryPoint(name="y", value="os.path").load() is os.path


def test_another_sys_path_gets_its_own_file(site, tmp_path, monkeypatch):
    first = entrypoints.cache_file("portable")
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setattr(sys, "path", [str(other), *sys.path])
    second = entrypoints.cache_file("portable")
    assert first is not None and second is not None and first != second
    monkeypatch.setattr(sys, "path", ["", *sys.path[1:]])  # python -m: the current directory
    assert entrypoints.cache_file("portable") == first
