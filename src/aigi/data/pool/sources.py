"""Where the pool's images come from: one entry per source, pinned to a commit.

Each rule is a regular expression on a file's path in the repository and the class
(and generator, where known) it gives. Licences are as the repositories state them
(``none stated`` means no licence file and no licence in the README: the images are
used for research, never redistributed; aigi ships only this table and the manifest).
``EXTERNAL`` is the external test set: sources in none of the training pool's
repositories, from generators the pool mostly lacks, never trained on (see
docs/data.md, "The external test set").
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
    crop: tuple[int, int, int, int] | None = None  # (left, top, right, bottom): the image part of a captioned card
    per_class: int | None = None  # keep at most this many per class, smallest sha256 first (same files everywhere)


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
    # GAN faces: the sources above have none, and StyleGAN faces were the external set's weakest
    # generator (docs/model-card.md). Two are paired with real faces, so that "a face" is no cue.
    Source("tpdne-faces", "xrv0/whichfaceisreal", "4f868af",
           (Rule(r"backend/data/images/real/\d{5}\.png$", REAL),
            Rule(r"backend/data/images/fake/[0-9a-f-]{36}\.jpg$", FAKE, "stylegan2")),
           "MIT", "1024 px FFHQ-numbered reals (PNG) against faces downloaded from thispersondoesnotexist.com "
           "(JPEG q100, December 2020: StyleGAN2); the fakes are deleted at the next commit"),
    Source("hardfakes", "tharunnayak14/Real-vs-Fake-Face-Detection", "2dade5e",
           (Rule(r"(?:images|val_images)/real/real_\d+\.jpg$", REAL),
            Rule(r"(?:images|val_images)/fake/fake_\d+\.jpg$", FAKE, "stylegan2")),
           "none stated (Kaggle 'hard fake vs real faces': reals from Unsplash)",
           "300 px faces, both classes JPEG at one quality; fakes from thispersondoesnotexist.com (StyleGAN2, "
           "per the README)"),
    Source("sg3-faces", "robilovric/DeepFakeGen", "c79668f",
           (Rule(r"stylegan3/results/seed\d+\.png$", FAKE, "stylegan3"),),
           "MIT", "1024 px StyleGAN3-R FFHQ samples as the generator wrote them (its notebook runs NVlabs' "
           "gen_images.py); no reals"),
    Source("cameras", "drewnoakes/metadata-extractor-images", "4beba64",
           (Rule(r"jpg/[^/]+\.(?:jpe?g|JPG)$", REAL),),
           "free to use however you wish (README)", "camera JPEGs of about 30 makes with their EXIF, from a "
           "metadata library's test images; only full-size ones (short side ≥ 1000 px) are taken",
           min_side=1000),
)


def by_name() -> dict[str, Source]:
    return {s.name: s for s in SOURCES}


# The external test set: scored, never trained on. Paired sources (both classes, put through one
# pipeline by their authors) give one AUC each; the real-only ones widen the reals (camera EXIF,
# raw-ish JPEGs from many makes) and are scored as one more group of reals.
EXTERNAL: tuple[Source, ...] = (
    Source("teenbiscuits", "TeenBiscuits/RealOrAI", "7e84fae",
           (Rule(r"public/images/real/real_\d{4}\.jpg$", REAL),
            Rule(r"public/images/ai/ai_\d{4}\.jpe?g$", FAKE, "gemini-3-pro-image")),
           "Apache-2.0 (the code); reals from Unsplash (Unsplash License)",
           "Nano Banana Pro against Unsplash photos, both saved as 1280 × 720 JPEG q85 by one script"),
    Source("maskin", "AlexanderFjellheim/maskinEllerMenneske_QuizApp", "26dfb6b",
           (Rule(r"public/images/real/\d+\.jpg$", REAL),
            Rule(r"public/images/fake/\d+\.jpg$", FAKE, "adobe-firefly")),
           "none stated", "Adobe Firefly (XMP tags; some generative fill) against photos, both exported from "
           "Photoshop at about 1920 × 1080"),
    Source("declan", "declan-wright/Image-Dataset", "ba64382",
           (Rule(r"B\d+\.jpg$", REAL), Rule(r"A\d+\.jpg$", FAKE, "flux-pro/imagen-3/recraft-v3")),
           "MIT (each real's caption names its photo licence)",
           "captioned 1024 × 1536 cards: the image is the top 1024 × 768, the caption (which names the answer) "
           "is cut off", crop=(0, 0, 1024, 768)),
    Source("truman", "Social-Design-Lab/Truman_AI", "02f50e6",
           (Rule(r"real/(?!33\.)\d+\.jpg$", REAL), Rule(r"AI/\d+\.jpg$", FAKE, "gpt-image")),
           "MIT (the code)", "OpenAI gpt-image PNGs against web and news photos (JPEG, WebP, PNG)"),
    Source("byron", "ByronOMC/ai-vs-real-images-arcade", "f22ff66",
           (Rule(r"data/news/REAL_\d+\.jpg$", REAL),
            Rule(r"data/news/AI_\d+\.png$", FAKE, "gemini-3.1-flash-image")),
           "none stated (reals: Reuters photos, their owners' rights)",
           "Gemini 3.1 Flash Image prompted from Reuters captions, against the Reuters photos; removed at HEAD"),
    Source("ffhq-faces", "cdiaconu04/Guess-real-or-ai", "e80b479",
           (Rule(r"public/gamePics/real/\d{5}\.jpg$", REAL),
            Rule(r"public/gamePics/fake/[A-Z0-9]{10}\.jpg$", FAKE, "stylegan")),
           "none stated", "256 × 256 faces: FFHQ-like reals, StyleGAN-like fakes (inferred, not stated)",
           per_class=300),
    Source("seegma-faces", "SeegmaEpsilon/experiment-real-or-ai-face", "921c826",
           (Rule(r"img/real/(?:man|woman)/\d\d\.jpg$", REAL),
            Rule(r"img/fake/(?:man|woman)/\d\d\.jpg$", FAKE, "stylegan2")),
           "none stated", "aligned 1024 px faces; StyleGAN2-like fakes (inferred)"),
    Source("dreambooth", "google/dreambooth", "4f887af",
           (Rule(r"dataset/[^/]+/\d+\.jpg$", REAL),),
           "CC BY 4.0 (per-image Unsplash credits in the repository)", "object photos, square crops"),
    Source("afhq", "clovaai/stargan-v2", "875b70a",
           (Rule(r"assets/representative/afhq/(?:src|ref)/(?:cat|dog|wild)/[^/]+\.jpg$", REAL),),
           "CC BY-NC 4.0", "512 × 512 animal-face photos"),
    Source("exif-samples", "ianare/exif-samples", "5332a9c",
           (Rule(r"jpg/(?:exif-org|gps|hdr|mobile|tests)/[^/]+\.jpe?g$", REAL),),
           "CC BY-SA 4.0 (contributed images, per the README)", "camera JPEGs of many makes, EXIF intact"),
    Source("rodeback", "ryanrodeback/PhotographerWebsite", "8916a4a",
           (Rule(r"photos/[^/]+\.(?:JPG|jpg)$", REAL),), "none stated", "a photographer's JPEGs up to 5400 px"),
    Source("silland", "jsilland/photos", "5f12f71",
           (Rule(r"[^/]+\.(?:JPG|jpg)$", REAL),), "none stated", "one 2014 Nikon shoot, 3872 × 2592"),
)

# ``all``: both tables in one folder, what the shipped photo default trains on (docs/data.md, "Why the
# external sources joined"): every held-out generator then becomes one more leave-one-source-out fold.
SETS: dict[str, tuple[Source, ...]] = {"pool": SOURCES, "external": EXTERNAL, "all": SOURCES + EXTERNAL}
