"""Cache directories for images the service manager can't use as they are (archives).

A format with :attr:`~portable.plugin.types.ImageFormat.unpack` is unpacked at attach into
``/var/cache/portable-services/unpacked/<name>-<hash>`` (``/run/portable-services/unpacked``
with ``--runtime``), and ``RootDirectory=`` points there; detach removes the directory once no
attached unit refers to the image any more. The hash is of the image path, so two images of the
same file name don't share a cache.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from portable.engine.transaction import TEMP_PREFIX

if TYPE_CHECKING:
    from portable.engine.transaction import Transaction
    from portable.plugin.types import Image
    from portable.systemd.host import Host

__all__ = ["UNPACK_DIR", "ensure_unpacked", "unpacked_path"]

UNPACK_DIR = {
    False: "/var/cache/portable-services/unpacked",
    True: "/run/portable-services/unpacked",
}


def unpacked_path(image_path: str, *, runtime: bool) -> str:
    """Where an image is unpacked, as the host sees it."""
    import hashlib  # ~2 ms (OpenSSL): only when an archive image is involved

    name = image_path.rstrip("/").rsplit("/", 1)[-1]
    digest = hashlib.sha256(image_path.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"{UNPACK_DIR[runtime]}/{name}-{digest}"


def ensure_unpacked(tx: Transaction, host: Host, image: Image, *, runtime: bool) -> None:
    """Unpack ``image`` into its cache directory in ``tx`` (kept if it is there already)."""
    assert image.format.unpack is not None
    target = host.path(unpacked_path(image.path, runtime=runtime))
    if target.is_dir():
        return
    tx.mkdir(target.parent, record=False)
    temp = target.parent / f"{TEMP_PREFIX}new-{target.name}.{os.urandom(4).hex()}"
    os.mkdir(temp, 0o755)
    try:
        image.format.unpack(image.host_path, temp)
        os.rename(temp, target)  # the finished tree appears at once
    except BaseException:
        import shutil

        shutil.rmtree(temp, ignore_errors=True)
        raise
    tx.adopt(target, source=image.path)
