// Blocks shared by @kiln/unet and @kiln/vae (diffusers' resnet.py, downsampling.py, upsampling.py).
export { ResnetBlock2D, normSilu } from './resnet-block-2d.js';
export type { ResnetBlock2DOptions } from './resnet-block-2d.js';
export { Downsample2D } from './downsample-2d.js';
export { Upsample2D } from './upsample-2d.js';
