"""The one HTTP download of the pipeline (ExORL archives, OGBench files): a finished file is kept and
never fetched again; a file appears only once complete and a valid zip (npz files are zips); a 404,
a truncated or corrupt file is a DatasetError naming it, and nothing is left behind."""

from __future__ import annotations

import http.client
import logging
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

from tqdm import tqdm

from pipeline_steps.core.episodes import DatasetError

log = logging.getLogger(__name__)


def download(url: str, dest: Path, timeout: float = 60.0) -> Path:
    """Fetch `url` to `dest` unless already there; the file appears only once complete and a valid zip."""
    dest = Path(dest)
    if dest.exists():
        log.info("using finished download %s", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as f:
            expected = resp.headers.get("Content-Length")
            expected = int(expected) if expected is not None else None
            got = 0
            with tqdm(total=expected, desc=f"download {url}", unit="B", unit_scale=True) as bar:
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
        if expected is not None and got != expected:
            raise DatasetError(f"download of {url} truncated: got {got} of {expected} bytes")
        if not zipfile.is_zipfile(part):
            raise DatasetError(f"download of {url} is not a zip archive ({got} bytes)")
        try:
            with zipfile.ZipFile(part) as z:
                bad = z.testzip()
        except (zipfile.BadZipFile, zlib.error, EOFError) as err:  # testzip only catches bad CRCs
            raise DatasetError(f"download of {url} is a corrupt zip: {err}") from None
        if bad is not None:
            raise DatasetError(f"download of {url} is a corrupt zip: member {bad} fails its CRC")
    except urllib.error.HTTPError as err:
        part.unlink(missing_ok=True)
        raise DatasetError(f"download of {url} failed: HTTP {err.code} {err.reason}") from None
    except (
        urllib.error.URLError,
        OSError,
        EOFError,
        http.client.HTTPException,
    ) as err:  # e.g. IncompleteRead
        part.unlink(missing_ok=True)
        raise DatasetError(f"download of {url} interrupted or unreachable: {err}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    part.replace(dest)
    return dest
