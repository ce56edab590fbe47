// The flags and usage text of `kiln generate`, apart from the options schema: `kiln generate --help`
// then prints without loading `@kiln/pipeline` (and the tensor library behind it).

/** img2img's default strength (diffusers' `StableDiffusionImg2ImgPipeline`). */
export const DEFAULT_STRENGTH = 0.8;

/** The flags of `kiln generate`, each with its job field (if any), value name and default as `--help` shows them. */
export const FLAGS = {
  model: { field: null, arg: 'SOURCE', help: 'a diffusers model folder, or a Hugging Face Hub id org/name (required)', def: undefined },
  prompt: { field: 'prompt', arg: 'TEXT', help: 'what to draw (required without --batch)', def: undefined },
  'negative-prompt': { field: 'negativePrompt', arg: 'TEXT', help: 'what to steer away from', def: '""' },
  steps: { field: 'steps', arg: 'N', help: 'denoising steps', def: '30' },
  'guidance-scale': { field: 'guidanceScale', arg: 'X', help: 'classifier-free guidance scale (≤ 1: off)', def: '7.5' },
  seed: { field: 'seed', arg: 'N', help: 'seed of the first image; image i uses seed + i', def: 'random' },
  scheduler: {
    field: 'scheduler',
    arg: 'NAME',
    help: 'euler, euler_a, ddim, ddpm, pndm, dpm++_2m, … or a diffusers class name',
    def: "the model's",
  },
  width: { field: 'width', arg: 'PX', help: 'image width, a multiple of 8', def: "the model's (512 for SD 1.x)" },
  height: { field: 'height', arg: 'PX', help: 'image height, a multiple of 8', def: "the model's (512 for SD 1.x)" },
  'num-images': { field: 'numImages', arg: 'N', help: 'images per prompt', def: '1' },
  image: {
    field: 'image',
    arg: 'FILE',
    help: 'image to image: start from this PNG, JPEG or WebP, resized to --width × --height',
    def: 'none: text to image',
  },
  strength: {
    field: 'strength',
    arg: 'S',
    help: 'with --image: how far the image is noised before denoising, in (0, 1] (1 ignores its content)',
    def: String(DEFAULT_STRENGTH),
  },
  out: { field: null, arg: 'DIR', help: 'where images and results.jsonl go', def: 'outputs' },
  batch: { field: null, arg: 'FILE', help: 'prompts.jsonl: one JSON object per line with the fields below', def: undefined },
  backend: { field: null, arg: 'NAME', help: 'wasm, cpu or webgpu', def: 'wasm' },
  lora: {
    field: null,
    arg: 'FILE[:SCALE]',
    help: 'a LoRA (.safetensors, diffusers or kohya layout, or a folder with pytorch_lora_weights.safetensors) at SCALE; repeat to stack',
    def: 'none; SCALE 1',
  },
} as const;

export type Flag = keyof typeof FLAGS;

export const GENERATE_USAGE = `kiln generate --model SOURCE (--prompt TEXT | --batch FILE) [options]

Text to image with a Stable Diffusion 1.x model, or image to image with --image. Writes PNGs (with
the generation parameters in their 'parameters' text chunk, as AUTOMATIC1111 writes them, with
'Denoising strength' for image to image) and results.jsonl (one line per prompt: files, seeds,
timings or the error) into --out. A rerun skips prompts already done.

options:
${(Object.entries(FLAGS) as [Flag, (typeof FLAGS)[Flag]][]).map(([name, f]) => `  --${`${name} ${f.arg}`.padEnd(24)} ${f.help}${f.def === undefined ? '' : ` (default: ${f.def})`}`).join('\n')}

--batch lines take the generation options as camelCase fields: {"prompt": "…", "negativePrompt": "…",
"steps": 30, "guidanceScale": 7.5, "seed": 1, "scheduler": "euler_a", "width": 512, "height": 512,
"numImages": 1, "image": "start.png", "strength": 0.6}; the command line's values are their defaults.
A line's relative "image" path is relative to the batch file's folder.`;
