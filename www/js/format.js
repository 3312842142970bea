// Text for people: durations, percentages, sizes, and error messages as sentences.

// Capitalized one-line message for the user.
export function messageOf(err) {
  const text = (err && err.message) || String(err);
  return text.charAt(0).toUpperCase() + text.slice(1);
}

// The message as one finished sentence.
export function sentence(err) {
  const text = messageOf(err).replace(/\s+/g, ' ').trim();
  return /[.!?…]$/.test(text) ? text : `${text}.`;
}

export const seconds = (ms) => (ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`);
export const percent = (p, digits = 1) => `${(p * 100).toFixed(digits)}%`;

export const megabytes = (n) => (n < 1e6 ? `${Math.max(1, Math.round(n / 1e3))} kB` : `${(n / 1e6).toFixed(1)} MB`);
