// The photo: a sample, a file picked, dropped or pasted, decoded and scaled down in the page. A
// model file dropped outside the model card is handed to the model loader.

import { $, $$, markOnce, setError } from './dom.js';
import { state } from './state.js';
import { writeHash } from './link.js';
import { loadUserFile, splitFiles } from './models.js';
import { refresh } from './render.js';

// The sample photos (samples/NAME.jpg) and how large a photo is kept in the page.
export const SAMPLES = ['cat', 'coffee', 'astronaut', 'rocket'];
const MAX_PHOTO_SIDE = 1024;
// A file with one of these names is a model, wherever it is dropped.
const MODEL_EXTENSIONS = /\.(onnx|keras|h5|hdf5|pth|pt|safetensors|bin|ckpt)$/i;

async function decodePhoto(blob, name) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob);
  } catch {
    const kind = blob.type ? ` (${blob.type})` : '';
    throw new Error(`“${name}”${kind} could not be read as an image: it is damaged or not a photo. Try a JPEG, PNG, WebP or GIF.`);
  }
  const original = { width: bitmap.width, height: bitmap.height };
  const scale = Math.min(1, MAX_PHOTO_SIDE / Math.max(bitmap.width, bitmap.height));
  if (scale < 1) {
    const resized = await createImageBitmap(bitmap, {
      resizeWidth: Math.max(1, Math.round(bitmap.width * scale)),
      resizeHeight: Math.max(1, Math.round(bitmap.height * scale)),
      resizeQuality: 'high',
    });
    bitmap.close();
    bitmap = resized;
  }
  const canvas = document.createElement('canvas');
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.fillStyle = '#fff'; // transparent pixels count as white
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const rgba = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  return { canvas, rgba, width: canvas.width, height: canvas.height, original };
}

async function usePhoto(blob, { name, sample = null }) {
  const gen = ++state.photoLoadGen;
  setError('photo', '');
  try {
    const photo = await decodePhoto(blob, name);
    if (gen !== state.photoLoadGen) return;
    state.photo = { ...photo, name, sample };
    markOnce('photo');
    state.photoGen++;
    const preview = $('#photo-preview');
    preview.width = photo.width;
    preview.height = photo.height;
    preview.getContext('2d').drawImage(photo.canvas, 0, 0);
    const resized = photo.original.width !== photo.width ? `, scaled from ${photo.original.width}×${photo.original.height}` : '';
    $('#photo-caption').textContent = `${name} · ${photo.width}×${photo.height}${resized}`;
    $('#photo-figure').hidden = false;
    $('#dropzone').classList.add('has-photo');
    for (const button of $$('.sample')) button.setAttribute('aria-pressed', String(button.dataset.sample === sample));
    writeHash();
    refresh();
  } catch (err) {
    if (gen !== state.photoLoadGen) return;
    setError('photo', err);
  }
}

export async function loadSample(sample) {
  try {
    const response = await fetch(new URL(`./samples/${sample}.jpg`, document.baseURI));
    if (!response.ok) throw new Error(`the sample photo samples/${sample}.jpg could not be loaded (${response.status})`);
    await usePhoto(await response.blob(), { name: `${sample}.jpg`, sample });
  } catch (err) {
    setError('photo', err);
  }
}

// A file from the picker, a drop or the clipboard: a photo, or a weights file dropped in the wrong place.
function takeFile(file, companion) {
  if (!file) return;
  if (MODEL_EXTENSIONS.test(file.name) && !file.type.startsWith('image/')) {
    setError('photo', '');
    $('#model-card').scrollIntoView({ behavior: 'smooth', block: 'nearest' });
    loadUserFile({ file, companion });
    return;
  }
  usePhoto(file, { name: file.name || 'pasted image' });
}

// Photo: picker, drop, paste, samples. Files may be dropped anywhere.
export function wirePhotoInput() {
  const input = $('#photo-input');
  input.addEventListener('change', () => {
    takeFile(input.files[0]);
    input.value = '';
  });
  const zone = $('#dropzone');
  const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes('Files');
  const modelCard = $('#model-card');
  // Files may be dropped anywhere: on the model card they are weights, elsewhere photos.
  window.addEventListener('dragover', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
    const onModel = modelCard.contains(e.target);
    modelCard.classList.toggle('dragging', onModel);
    zone.classList.toggle('dragging', !onModel);
  });
  const endDrag = () => {
    zone.classList.remove('dragging');
    modelCard.classList.remove('dragging');
  };
  window.addEventListener('dragleave', (e) => {
    if (!e.relatedTarget) endDrag();
  });
  window.addEventListener('drop', (e) => {
    endDrag();
    if (!hasFiles(e)) return;
    e.preventDefault();
    const files = [...e.dataTransfer.files];
    if (!files.length) return;
    // A file dropped on the model card is a model; elsewhere a photo, unless its name says model
    // (several files at once: a model and its external weights).
    const { file, companion } = splitFiles(files);
    if (modelCard.contains(e.target)) loadUserFile({ file, companion });
    else takeFile(file, companion);
  });
  document.addEventListener('paste', (e) => {
    const items = [...(e.clipboardData?.items || [])];
    const image = items.find((item) => item.kind === 'file' && item.type.startsWith('image/'));
    if (image) {
      e.preventDefault();
      const file = image.getAsFile();
      if (file) usePhoto(file, { name: file.name && file.name !== 'image.png' ? file.name : 'pasted image' });
      return;
    }
    const inField = e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement;
    if (!inField && items.some((item) => item.kind === 'file')) setError('photo', 'the clipboard holds a file that is not an image');
  });
  for (const button of $$('.sample')) button.addEventListener('click', () => loadSample(button.dataset.sample));
}
