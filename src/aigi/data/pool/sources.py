"""Where the pool's images come from: one entry per source, pinned to a commit.

Each rule is a regular expression on a file's path in the repository and the class
(and generator, where known) it gives. Licences are as the repositories state them
(``none stated`` means no licence file and no licence in the README: the images are
used for research, never redistributed; aigi ships only this table and the manifest).
See docs/data.md.
"""
from __future__ import annotations

from dataclasses import dataclass

REAL, FAKE = 0, 1
_IMG = r"\.(?:jpe?g|png|webp)$"


@dataclass(frozen=True)
class Rule:
    pattern: str  # a regular expression matched against the whole path
    label: int
    generator: str | None = None  # None: unknown
    needs_png_text: str | None = None  # keep a file only if its PNG text chunks hold this key (ComfyUI outputs)


@dataclass(frozen=True)
class Source:
    name: str
    repo: str  # owner/name on GitHub
    commit: str
    rules: tuple[Rule, ...]
    licence: str  # as the repository states it
    notes: str = ""
    watermark: str | None = None  # "corner": a visible generator mark in the bottom-right corner, cropped off
    placeholder: str | None = None  # path of the safety-checker frame this repository substitutes for refused outputs
    min_side: int = 256  # shorter side below this is rejected


SOURCES: tuple[Source, ...] = (
    Source("lab", "Laboratoriet/real-or-ai-game", "2698516",
           (Rule(r"public/images/(?:city|interior|nature|people)/real/[^/]+" + _IMG, REAL),
            Rule(r"public/images/(?:city|interior|nature|people)/ai/[^/]+" + _IMG, FAKE)),
           "none stated", "best paired photoreal set; fakes have generator-typical sizes, reals capped at "
           "1600 px: a size shortcut"),
    Source("kaivalya", "kaivalyagandhi/ai-or-not-game", "8c02dba",
           (Rule(r"src/client/public/images/[^/]+/pair\d+-human" + _IMG, REAL),
            Rule(r"src/client/public/images/[^/]+/pair\d+-ai" + _IMG, FAKE)),
           "MIT", "both classes screen-captured and resampled"),
    Source("nanobanana", "PicoTrex/Awesome-Nano-Banana-images", "7d34475",
           (Rule(r"images/case\d+/output" + _IMG, FAKE, "gemini-2.5-flash-image"),
            Rule(r"images/pro_case\d+/output" + _IMG, FAKE, "gemini-3-pro-image")),
           "Apache-2.0", "visible sparkle watermark in the bottom-right corner (cropped off); many graphics",
           watermark="corner"),
    Source("gpt4o", "songguoxs/gpt4o-image-prompts", "27ee9f0",
           (Rule(r"images/\d+(?:-\d+)?" + _IMG, FAKE, "gpt-4o-image"),),
           "none stated", "GPT-4o / Nano Banana Pro posts; collages and text among them"),
    Source("comfy", "comfyanonymous/ComfyUI_examples", "f9431bb",
           (Rule(r"[^/]+/[^/]+\.png$", FAKE, None, needs_png_text="prompt"),),
           "ISC-style (workflows free to use, copy, modify and distribute)",
           "~22 open models (Flux, SD3/3.5, SDXL, HiDream, Qwen-Image…): outputs carry their ComfyUI workflow; "
           "generator = the example's folder"),
    Source("kontext", "breakinferno/comfy-flow2", "786f011",
           (Rule(r"output/[^/]+\.png$", FAKE, "flux.1-kontext"),), "none stated", "one subject"),
    Source("sd1-extile", "Extile1/stable-diffusion", "0744c5d",
           (Rule(r"outputs/txt2img-samples/samples/\d+\.png$", FAKE, "sd-1.x"),),
           "CreativeML Open RAIL-M", "SD 1.x 512 × 512; refused outputs are the safety-checker frame",
           placeholder="assets/rick.jpeg"),
    Source("sd1-josh", "JoshCLWren/stable-diffusion", "440bbe3",
           (Rule(r"outputs/txt2img-samples/samples/\d+\.png$", FAKE, "sd-1.x"),),
           "CreativeML Open RAIL-M", "SD 1.x 512 × 512", placeholder="assets/rick.jpeg"),
    Source("imagenet", "EliSchwartz/imagenet-sample-images", "bc69043",
           (Rule(r"[^/]+\.JPEG$", REAL),), "none stated (ImageNet images: their owners' terms)",
           "one small JPEG per ImageNet class"),
    Source("srbench", "jbhuang0604/SelfExSR", "8f6dd8c",
           (Rule(r"data/(?:Urban100|BSD100|Sun-Hays80)/image_SRF_\d+/img_\d+_SRF_\d+_HR\.png$", REAL),),
           "none stated (benchmark images: their owners' terms)", "PNG reals from super-resolution benchmarks"),
    Source("kodak", "cszn/FFDNet", "e787f46",
           (Rule(r"testsets/Kodak24/kodim\d+\.png$", REAL),), "none stated (Kodak test images: free for research)",
           "24 PNG reals"),
)


def by_name() -> dict[str, Source]:
    return {s.name: s for s in SOURCES}
