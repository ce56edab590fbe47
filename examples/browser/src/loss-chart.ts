/** Draws a loss curve on a canvas: the raw losses, their running mean, and axes labelled with the range. */
export function drawLossCurve(canvas: HTMLCanvasElement, losses: readonly number[], totalSteps: number): void {
  const ctx = canvas.getContext('2d');
  if (!ctx) return;
  const { width: W, height: H } = canvas;
  const pad = { left: 48, right: 8, top: 8, bottom: 20 };
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, W, H);
  ctx.strokeStyle = '#999';
  ctx.lineWidth = 1;
  ctx.strokeRect(pad.left, pad.top, W - pad.left - pad.right, H - pad.top - pad.bottom);
  if (losses.length === 0) return;
  const lo = Math.min(...losses);
  const hi = Math.max(...losses);
  const span = hi - lo || Math.abs(hi) || 1;
  const n = Math.max(totalSteps, losses.length, 2);
  const x = (i: number) => pad.left + (i / (n - 1)) * (W - pad.left - pad.right);
  const y = (v: number) => pad.top + (1 - (v - (lo - 0.05 * span)) / (1.1 * span)) * (H - pad.top - pad.bottom);
  const line = (values: readonly number[], colour: string, width: number) => {
    ctx.strokeStyle = colour;
    ctx.lineWidth = width;
    ctx.beginPath();
    values.forEach((v, i) => (i === 0 ? ctx.moveTo(x(i), y(v)) : ctx.lineTo(x(i), y(v))));
    if (values.length === 1) ctx.arc(x(0), y(values[0]), 2, 0, 2 * Math.PI);
    ctx.stroke();
  };
  line(losses, '#9ecae1', 1);
  // A running mean over 10 steps: single-step DreamBooth losses are dominated by the timestep drawn.
  const smooth = losses.map((_, i) => {
    const w = losses.slice(Math.max(0, i - 9), i + 1);
    return w.reduce((a, b) => a + b, 0) / w.length;
  });
  line(smooth, '#08519c', 2);
  ctx.fillStyle = '#333';
  ctx.font = '11px sans-serif';
  ctx.fillText(hi.toPrecision(3), 2, pad.top + 10);
  ctx.fillText(lo.toPrecision(3), 2, H - pad.bottom);
  ctx.fillText(`step ${losses.length} / ${totalSteps}`, pad.left + 4, H - 5);
}
