// The model menu's entries (the engine's built-ins and the user's own file) and the loaded
// model's description, in words: titles, input sizes, which entry is loaded.

import { state } from './state.js';

// The model menu's entry for a model file the user brings (its value in the menu and the hash).
export const FILE_ENTRY = 'file';

export function catalogueEntry(name) {
  return state.catalogue?.find((m) => m.name === name) || null;
}

// A menu entry for people: a built-in's title from the engine, or "your model".
export function entryTitle(name) {
  if (name === FILE_ENTRY) return 'your model';
  return catalogueEntry(name)?.title || name;
}

// A loaded model for people.
export function modelTitle(info) {
  return info.from_file ? `Your model: ${info.title}` : info.title;
}

// The menu entry a loaded model belongs to.
export function entryOf(info) {
  return info.from_file ? FILE_ENTRY : info.model;
}

export const hasMap = (layer) => layer.shape[1] * layer.shape[2] > 1;
export const sizeOf = (info) => `${info.input_height}×${info.input_width}`;

// Whether `name` is an entry of the model menu.
export function isEntry(name) {
  return name === FILE_ENTRY || Boolean(catalogueEntry(name));
}

// Whether a link's (or the menu's) entry is the model now loaded.
export function isLoaded(name) {
  const info = state.model;
  if (!info || !name) return false;
  return name === FILE_ENTRY ? info.from_file : !info.from_file && info.model === name;
}

// Weights bigger than this are downloaded only when the user asks (VGG16's 553 MB).
const ASK_ABOVE_BYTES = 50e6;

// The manifest's entry for a built-in whose weights are a big download ({url, bytes, …}), or null.
export function bigDownload(name) {
  const entry = state.manifest?.models?.[name];
  return entry?.url && entry.bytes > ASK_ABOVE_BYTES ? entry : null;
}

// Whether a built-in's weights come with the page (no file to ask for, no download to agree to).
export function isBundled(name) {
  return Boolean((state.manifest?.models?.[name]?.url && !bigDownload(name)) || catalogueEntry(name)?.bundled);
}
