// What the page shows and knows, shared by every module: one object, changed in place.

export const state = {
  manifest: null,
  backendPref: 'auto',
  backend: null,
  engineReady: false,
  engineGen: 0,
  catalogue: null, // the built-in networks, from the engine: [{name, title, bundled, …}]
  selectedModel: null, // the model menu's entry: a catalogue name or FILE_ENTRY
  model: null, // the loaded model's description, from the engine
  source: null, // where the loaded model came from: {id, user, model?, url?, sha256?, size?, blob?, name?}
  options: { preprocessing: null, labels: null }, // what the user chose for it
  ownLabels: null, // the class names the loaded model came with
  supplied: new Map(), // menu entry → {source, options, info}: the files the user gave this session
  sourceCount: 0,
  queuedLoad: null,
  modelGen: 0,
  labelsGen: 0,
  loadGen: 0,
  photo: null, // {name, sample, width, height, canvas, rgba}
  photoGen: 0,
  photoLoadGen: 0,
  photoOnEngine: -1,
  view: 'gradcam',
  gradcam: { layer: null, cls: -1, method: 'gradcam', eigenSmooth: false, augSmooth: false, colormap: 'jet', opacity: 0.4 },
  // A faithfulness measurement is running (its button waits).
  faithRunning: false,
  act: { layer: null, colormap: 'viridis', channel: 0, shape: null, grid: null },
  filters: { layer: null, count: 16, first: 0, size: 64, steps: 40, mode: 'classic', variants: 1, objective: 'channel', running: false, cancelTimer: 0, frames: [] },
  rendered: {},
  inflight: {},
  pendingHash: null, // layer/class from the URL, applied once the model is loaded
};
