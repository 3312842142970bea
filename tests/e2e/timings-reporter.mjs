// A Playwright reporter that prints, after the run, the timings the tests record with `timing()`
// (tests/e2e/helpers.mjs) per backend: the numbers the README and bench/NOTES.md quote.

export default class TimingsReporter {
  constructor() {
    this.timings = new Map(); // project → [[name, seconds]]
  }

  onTestEnd(test, result) {
    const project = test.parent.project()?.name || '';
    for (const { type, description } of result.annotations ?? test.annotations) {
      if (type !== 'timing') continue;
      const [, name, seconds] = description.match(/^(.*): ([\d.]+) s$/) || [];
      if (!name) continue;
      if (!this.timings.has(project)) this.timings.set(project, []);
      this.timings.get(project).push([name, Number(seconds)]);
    }
  }

  onEnd() {
    if (!this.timings.size) return;
    const lines = ['', 'Timings (seconds):'];
    for (const [project, rows] of this.timings) {
      lines.push(`  ${project}`);
      for (const [name, seconds] of rows) lines.push(`    ${name.padEnd(34)} ${seconds.toFixed(2)}`);
    }
    console.log(lines.join('\n'));
  }

  printsToStdio() {
    return false;
  }
}
