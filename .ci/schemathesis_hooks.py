"""schemathesis hooks for the admin API (loaded by .ci/schemathesis through SCHEMATHESIS_HOOKS).

The payload upload takes a zip archive as raw bytes (`application/zip`), which schemathesis
cannot generate by itself: this module gives it zip archives, whole and damaged (cut short,
a byte changed, bytes put before or after), and bytes that are no archive at all. The server
must answer each with a 200 or a 400 naming why, never a 5xx. A downloaded payload is checked
to be a whole archive.
"""

import io
import zipfile

import schemathesis
from hypothesis import strategies as st


@st.composite
def archives(draw):
    """A zip archive of up to four small files, with unique names."""
    files = draw(
        st.lists(
            st.tuples(st.text(min_size=1, max_size=16), st.binary(max_size=256)),
            max_size=4,
            unique_by=lambda file: file[0],
        )
    )
    method = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, content in files:
            archive.writestr(name, content)
    return buffer.getvalue()


@st.composite
def damaged(draw):
    """An archive cut short, with a byte changed, or with bytes before or after it."""
    data = draw(archives())
    how = draw(st.sampled_from(["cut", "change", "prepend", "append"]))
    if how == "cut":
        return data[: draw(st.integers(0, max(len(data) - 1, 0)))]
    if how == "change" and data:
        at = draw(st.integers(0, len(data) - 1))
        return data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    extra = draw(st.binary(min_size=1, max_size=64))
    return extra + data if how == "prepend" else data + extra


schemathesis.openapi.media_type(
    "application/zip", st.one_of(archives(), damaged(), st.binary(max_size=512))
)


@schemathesis.deserializer("application/zip")
def downloaded_archive(ctx, response):
    """A downloaded payload must be a whole zip archive; its bytes then stand for the
    documented `string` (format `binary`)."""
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        broken = archive.testzip()
    if broken is not None:
        raise ValueError(f"the downloaded archive's entry {broken!r} is damaged")
    return response.content.decode("latin-1")
