// Draws a diagram model (scenarios/_diagram.ts) as a self-contained SVG: no scripts, no
// fonts or styles from the network. Lifelines left to right, time downward. Elements
// carry classes and data- attributes (participant, arrow, note, activation, loop) so that
// tests and readers' tools can find them.
import type { ArrowStep, Diagram, Participant, Step } from "./_diagram.ts";

const FONT_SIZE = 12;
const CHAR_WIDTH = 6.8; // a generous average for 12px sans-serif
const MARGIN = 16;
const GUTTER = 78; // the time column
const COLUMN_GAP = 36;
const BOX_HEIGHT = 34;
const ARROW_ROW = 34;
const LINE_HEIGHT = 15;
const NOTE_WIDTH = 260;
const BAR = 5; // half the width of an activation bar
const HALO = `stroke="#fff" stroke-width="4" paint-order="stroke"`; // labels over lifelines

/** Escapes text for XML content and attribute values. */
export function xmlText(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

function textWidth(text: string): number {
  return text.length * CHAR_WIDTH;
}

/** Splits text into lines of at most `width` characters, at spaces where possible. */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    let rest = word;
    while (rest.length > width) {
      if (line) lines.push(line), line = "";
      lines.push(rest.slice(0, width));
      rest = rest.slice(width);
    }
    if (line === "") line = rest;
    else if (line.length + 1 + rest.length <= width) line += " " + rest;
    else lines.push(line), line = rest;
  }
  if (line) lines.push(line);
  return lines.length > 0 ? lines : [""];
}

interface Column {
  participant: Participant;
  x: number;
  width: number;
}

function layoutColumns(participants: Participant[], steps: Step[]): Column[] {
  // Columns fit their boxes; gaps widen to fit the labels of arrows between neighbours.
  const widths = participants.map((p) => Math.max(120, textWidth(p.label) + 24));
  const gaps = participants.map(() => COLUMN_GAP);
  const index = new Map(participants.map((p, i) => [p.id, i]));
  const arrows = steps.flatMap((s) =>
    s.type === "arrow" ? [s] : s.type === "loop" ? [s.arrow] : []
  );
  for (const arrow of arrows) {
    const a = index.get(arrow.from)!;
    const b = index.get(arrow.to)!;
    if (Math.abs(a - b) !== 1) continue;
    const left = Math.min(a, b);
    const needed = Math.min(textWidth(arrow.label) + 24, 420);
    const span = (widths[left] + widths[left + 1]) / 2 + gaps[left];
    if (span < needed) gaps[left] += needed - span;
  }
  const columns: Column[] = [];
  let x = MARGIN + GUTTER;
  for (const [i, participant] of participants.entries()) {
    columns.push({ participant, x: x + widths[i] / 2, width: widths[i] });
    x += widths[i] + gaps[i];
  }
  return columns;
}

/** The diagram as a standalone SVG document. */
export function toSvg(diagram: Diagram): string {
  const columns = layoutColumns(diagram.participants, diagram.steps);
  const byId = new Map(columns.map((column) => [column.participant.id, column]));
  const right = columns.length > 0
    ? columns[columns.length - 1].x + columns[columns.length - 1].width / 2
    : MARGIN + GUTTER + 120;
  const body: string[] = [];
  const bars: string[] = [];
  const active = new Map<string, number>(); // participant id -> y where its bar starts
  const top = MARGIN + 28;
  let y = top + BOX_HEIGHT + 16;
  let lastTime = "";
  let widest = 0; // right edge of the notes

  const stamp = (t: number, at: number) => {
    if (!Number.isFinite(t)) return;
    const shown = `+${(t - diagram.start).toFixed(1)} ms`;
    if (shown === lastTime) return;
    lastTime = shown;
    body.push(
      `<text class="time" x="${MARGIN + GUTTER - 10}" y="${at}" text-anchor="end" ` +
        `fill="#888" font-size="10">${shown}</text>`,
    );
  };
  const edge = (id: string, towards: number) => {
    const column = byId.get(id)!;
    const offset = active.has(id) ? BAR : 0;
    return column.x + (towards >= column.x ? offset : -offset);
  };
  const drawArrow = (step: ArrowStep, rowTop: number): number => {
    const from = byId.get(step.from)!;
    const to = byId.get(step.to)!;
    const name = (id: string) => byId.get(id)!.participant.name;
    const attributes = `class="arrow" data-from="${xmlText(name(step.from))}" data-to="${
      xmlText(name(step.to))
    }" data-label="${xmlText(step.label)}" data-kind="${step.kind}" data-style="${step.style}"`;
    const dash = step.style === "dashed" || step.style === "cross" ? ` stroke-dasharray="6 4"` : "";
    const marker = step.style === "cross"
      ? ""
      : ` marker-end="url(#${step.style === "async" ? "open-head" : "head"})"`;
    stamp(step.t, rowTop + 22);
    if (from === to) {
      const x = edge(step.from, Infinity);
      body.push(
        `<g ${attributes}><path d="M${x},${rowTop + 14} h36 v14 h-34" fill="none" ` +
          `stroke="#333"${dash}${marker}/><text x="${x + 42}" y="${rowTop + 25}">` +
          `${xmlText(step.label)}</text></g>`,
      );
      return ARROW_ROW + 8;
    }
    const x1 = edge(step.from, to.x);
    const x2 = edge(step.to, from.x);
    const lineY = rowTop + 24;
    const cross = step.style === "cross"
      ? `<path d="M${x2 - 6},${lineY - 6} l12,12 m0,-12 l-12,12" stroke="#b00" ` +
        `stroke-width="2"/>`
      : "";
    body.push(
      `<g ${attributes}><line x1="${x1}" y1="${lineY}" x2="${x2}" y2="${lineY}" ` +
        `stroke="#333"${dash}${marker}/>${cross}<text x="${(x1 + x2) / 2}" y="${lineY - 6}" ` +
        `text-anchor="middle" ${HALO}>${xmlText(step.label)}</text></g>`,
    );
    return ARROW_ROW;
  };

  for (const step of diagram.steps) {
    switch (step.type) {
      case "arrow":
        y += drawArrow(step, y);
        break;
      case "activate":
        active.set(step.participant, y);
        break;
      case "deactivate": {
        const start = active.get(step.participant);
        if (start === undefined) break;
        active.delete(step.participant);
        bars.push(bar(byId.get(step.participant)!, start, y));
        break;
      }
      case "note": {
        const column = byId.get(step.over[0])!;
        const blocked = step.tone !== "note";
        const width = blocked ? NOTE_WIDTH + 40 : Math.max(column.width, NOTE_WIDTH);
        const lines = wrap(step.text, Math.floor((width - 16) / CHAR_WIDTH));
        const boxWidth = Math.max(...lines.map(textWidth)) + 16;
        const height = lines.length * LINE_HEIGHT + 10;
        const x = blocked ? column.x + BAR + 6 : Math.max(MARGIN + GUTTER, column.x - boxWidth / 2); // clear of the time column
        widest = Math.max(widest, x + boxWidth);
        const fill = step.tone === "blocked"
          ? "#fde2e2"
          : step.tone === "woken"
          ? "#e0f3e0"
          : "#fff8d6";
        stamp(step.t, y + 18);
        const over = step.over.map((id) => byId.get(id)!.participant.name).join(",");
        body.push(
          `<g class="note" data-over="${xmlText(over)}" data-tone="${step.tone}">` +
            `<rect x="${x}" y="${y + 4}" width="${boxWidth}" height="${height}" rx="3" ` +
            `fill="${fill}" stroke="#b8a860"/>` +
            lines.map((line, i) =>
              `<text x="${x + 8}" y="${y + 19 + i * LINE_HEIGHT}">${xmlText(line)}</text>`
            ).join("") + `</g>`,
        );
        y += height + 10;
        break;
      }
      case "loop": {
        const from = byId.get(step.arrow.from)!;
        const to = byId.get(step.arrow.to)!;
        const left = Math.min(from.x, to.x) - 40;
        const width = Math.abs(from.x - to.x) + 80;
        const height = 26 + ARROW_ROW + 6;
        body.push(
          `<g class="loop" data-label="${xmlText(step.label)}"><rect x="${left}" y="${y + 4}" ` +
            `width="${width}" height="${height}" fill="none" stroke="#777" ` +
            `stroke-dasharray="3 3"/><text x="${left + 6}" y="${y + 18}" font-weight="bold">` +
            `loop ${xmlText(step.label)}</text></g>`,
        );
        drawArrow(step.arrow, y + 20);
        y += height + 10;
        break;
      }
    }
  }
  for (const [participant, start] of active) bars.push(bar(byId.get(participant)!, start, y));
  const bottom = y + 10;
  const height = bottom + BOX_HEIGHT + MARGIN;
  const width = Math.ceil(Math.max(right, widest) + MARGIN);
  const lifelines = columns.map((column) => {
    const { participant: p, x, width: w } = column;
    const fill = p.kind === "process" ? "#e8eefc" : "#fdf0d8";
    const box = (boxY: number) =>
      `<rect x="${x - w / 2}" y="${boxY}" width="${w}" height="${BOX_HEIGHT}" ` +
      `rx="${p.kind === "process" ? 2 : 12}" fill="${fill}" stroke="#555"/>` +
      `<text x="${x}" y="${boxY + 21}" text-anchor="middle">${xmlText(p.label)}</text>`;
    return `<g class="participant" data-id="${p.id}" data-name="${xmlText(p.name)}" ` +
      `data-kind="${p.kind}">${box(top)}<line class="lifeline" x1="${x}" ` +
      `y1="${top + BOX_HEIGHT}" x2="${x}" y2="${bottom}" stroke="#999" ` +
      `stroke-dasharray="${p.kind === "process" ? "4 3" : "1 3"}"/>${box(bottom)}</g>`;
  });
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="${FONT_SIZE}">`,
    `<title>${xmlText(diagram.title)}</title>`,
    `<defs><marker id="head" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" ` +
    `markerHeight="9" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#333"/>` +
    `</marker><marker id="open-head" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" ` +
    `markerHeight="9" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10" fill="none" ` +
    `stroke="#333"/></marker></defs>`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text class="title" x="${MARGIN}" y="${MARGIN + 10}" font-size="15" font-weight="bold">` +
    `${xmlText(diagram.title)}</text>`,
    ...lifelines,
    ...bars,
    ...body,
    `</svg>`,
    "",
  ].join("\n");
}

function bar(column: Column, from: number, to: number): string {
  return `<rect class="activation" data-participant="${xmlText(column.participant.name)}" ` +
    `x="${column.x - BAR}" y="${from}" width="${2 * BAR}" height="${Math.max(to - from, 4)}" ` +
    `fill="#f4b4b4" stroke="#a33"/>`;
}
