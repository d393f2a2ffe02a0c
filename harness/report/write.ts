// Writes a run's reports: report.json (validated against the schema first), junit.xml,
// report.html and report.pdf (Debian's chromium, headless, no network).
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { reportSchema, type RunReport } from './schema.ts';
import { junitXml } from './junit.ts';
import { reportHtml } from './html.ts';
import { PROJECT_ROOT } from '../vmlab/paths.ts';

type Plugin = (ajv: Ajv2020) => Ajv2020;
const addFormats = ((addFormatsModule as unknown as { default?: Plugin }).default ?? (addFormatsModule as unknown as Plugin));
const ajv = new Ajv2020({ allErrors: true, strict: false });
addFormats(ajv);
const validate = ajv.compile(reportSchema);

export class ReportSchemaError extends Error {
  override name = 'ReportSchemaError';
}

export function validateReport(r: unknown): asserts r is RunReport {
  if (!validate(r)) {
    const errs = (validate.errors ?? []).slice(0, 10).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`);
    throw new ReportSchemaError(`report.json does not match its schema (a harness bug):\n  ${errs.join('\n  ')}`);
  }
}

export function reportsDir(): string {
  return process.env.RDMA_FAILOVER_REPORTS ? resolve(process.env.RDMA_FAILOVER_REPORTS) : resolve(PROJECT_ROOT, 'reports');
}

export const CHROMIUM = process.env.RDMA_FAILOVER_CHROMIUM ?? '/usr/bin/chromium';

/** Prints the HTML to PDF with headless chromium (no network: the page is self-contained). */
export async function htmlToPdf(html: string, pdfFile: string): Promise<void> {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage();
    await page.route('**/*', (route) => (route.request().url().startsWith('data:') ? route.continue() : route.abort()));
    await page.setContent(html, { waitUntil: 'load' });
    await page.pdf({ path: pdfFile, format: 'A4', printBackground: true, margin: { top: '12mm', bottom: '12mm', left: '10mm', right: '10mm' } });
  } finally {
    await browser.close();
  }
}

export interface Written {
  dir: string;
  json: string;
  junit: string;
  html: string;
  pdf?: string;
  pdfError?: string;
}

export async function writeReports(r: RunReport, opts: { dir?: string; pdf?: boolean } = {}): Promise<Written> {
  validateReport(r);
  const dir = opts.dir ?? join(reportsDir(), r.run.id);
  mkdirSync(dir, { recursive: true });
  const w: Written = { dir, json: join(dir, 'report.json'), junit: join(dir, 'junit.xml'), html: join(dir, 'report.html') };
  writeFileSync(w.json, JSON.stringify(r, null, 2));
  writeFileSync(w.junit, junitXml(r));
  const html = reportHtml(r);
  writeFileSync(w.html, html);
  if (opts.pdf !== false && existsSync(CHROMIUM)) {
    try {
      await htmlToPdf(html, join(dir, 'report.pdf'));
      w.pdf = join(dir, 'report.pdf');
    } catch (e) {
      w.pdfError = (e as Error).message;
    }
  } else if (opts.pdf !== false) w.pdfError = `${CHROMIUM} not found (apt-get install chromium)`;
  if (!opts.dir) {
    const latest = join(reportsDir(), 'latest');
    rmSync(latest, { force: true });
    try {
      symlinkSync(r.run.id, latest);
    } catch {
      // a filesystem without symlinks: no "latest"
    }
  }
  return w;
}

export function readReport(dirOrFile: string): RunReport {
  const f = dirOrFile.endsWith('.json') ? dirOrFile : join(dirOrFile, 'report.json');
  const r: unknown = JSON.parse(readFileSync(f, 'utf8'));
  validateReport(r);
  return r;
}
