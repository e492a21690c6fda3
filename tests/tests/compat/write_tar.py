"""Writes a tar of ROOT to stdout with Python's tarfile, in FORMAT (ustar,
gnu or pax): `write_tar.py FORMAT ROOT NAME...`, or `.` for the whole tree
(top-down, sorted). In pax format each entry's xattrs (capabilities
included) go into SCHILY.xattr records, values as raw bytes. Numeric owners
only, as image tools write them."""
import os
import sys
import tarfile

fmt = {"ustar": tarfile.USTAR_FORMAT, "gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT}[sys.argv[1]]
root, names = sys.argv[2], sys.argv[3:]
if names == ["."]:
    names = []
    for top, dirs, files in os.walk(root):
        dirs.sort()
        rel = os.path.relpath(top, root)
        for n in sorted(dirs + files):
            names.append(n if rel == "." else os.path.join(rel, n))

with tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=fmt) as t:
    for n in names:
        p = os.path.join(root, n)
        ti = t.gettarinfo(p, arcname=n)
        ti.uname = ti.gname = ""
        if fmt == tarfile.PAX_FORMAT:
            for k in os.listxattr(p, follow_symlinks=False):
                v = os.getxattr(p, k, follow_symlinks=False)
                ti.pax_headers["SCHILY.xattr." + k] = v.decode("utf-8", "surrogateescape")
        if ti.isreg():
            with open(p, "rb") as f:
                t.addfile(ti, f)
        else:
            t.addfile(ti)
