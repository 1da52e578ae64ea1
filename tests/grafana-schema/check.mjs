// Type-checks every dashboard in ../../dashboards against Grafana's own schema, the types
// that @grafana/schema generates from Grafana's CUE kinds: the dashboard model (Dashboard,
// Panel, RowPanel, VariableModel, FieldConfigSource) and each panel plugin's Options and
// FieldConfig. Run by tests/run.sh (npm ci first) and by tests/it/dashboards.rs when
// node_modules is present. Exits 1 and prints TypeScript's diagnostics on a mismatch.
//
// JSON holds enum values as plain strings and numbers, so the schema's types are mapped to
// their JSON form (Json<T> below); panel options and field config may leave out what Grafana
// defaults (DeepPartial), but every key they set must exist in the schema with the right type.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const here = path.dirname(fileURLToPath(import.meta.url));
const dir = process.argv[2] ?? path.join(here, '..', '..', 'dashboards');
const work = fs.mkdtempSync(path.join(here, '.check-'));

// The panel plugins the dashboards use, by type: the module of their generated options.
const PLUGINS = {
  stat: 'stat/panelcfg/x/StatPanelCfg_types.gen',
  gauge: 'gauge/panelcfg/x/GaugePanelCfg_types.gen',
  bargauge: 'bargauge/panelcfg/x/BarGaugePanelCfg_types.gen',
  piechart: 'piechart/panelcfg/x/PieChartPanelCfg_types.gen',
  table: 'table/panelcfg/x/TablePanelCfg_types.gen',
  timeseries: 'timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen',
  'state-timeline': 'statetimeline/panelcfg/x/StateTimelinePanelCfg_types.gen',
  heatmap: 'heatmap/panelcfg/x/HeatmapPanelCfg_types.gen',
  geomap: 'geomap/panelcfg/x/GeomapPanelCfg_types.gen',
};
// Relative paths: the package's exports map hides its per-plugin modules from bare imports.
const RAW = '../node_modules/@grafana/schema/dist/esm/raw/composable/';

const prelude = `import type { Dashboard } from '@grafana/schema';
type Json<T> = T extends string ? (string extends T ? string : \`\${T}\`)
  : T extends number ? number
  : T extends boolean ? boolean
  : T extends Array<infer U> ? Array<Json<U>>
  : T extends object ? { [K in keyof T]: Json<T[K]> }
  : T;
type DeepPartial<T> = T extends Array<infer U> ? Array<DeepPartial<U>>
  : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;
`;

const problems = [];
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
if (files.length === 0) problems.push(`no dashboards in ${dir}`);
const sources = [];
for (const file of files) {
  const dashboard = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
  // Import metadata for the UI's import dialog, not part of the dashboard model.
  for (const key of ['__inputs', '__requires', '__elements']) delete dashboard[key];
  let src = prelude;
  const used = new Set();
  const checks = [];
  for (const panel of dashboard.panels ?? []) {
    if (panel.type === 'row') continue;
    const module = PLUGINS[panel.type];
    if (!module) {
      problems.push(`${file}: panel type ${panel.type} has no schema here: add it to PLUGINS`);
      continue;
    }
    const alias = panel.type.replace('-', '_');
    if (!used.has(alias)) {
      used.add(alias);
      const hasFieldConfig = fs
        .readFileSync(path.join(work, RAW, module + '.d.ts'), 'utf8')
        .includes('export interface FieldConfig ');
      src += `import type { Options as ${alias}_Options${hasFieldConfig ? `, FieldConfig as ${alias}_Field` : ''} } from '${RAW}${module}.js';\n`;
      if (!hasFieldConfig) src += `type ${alias}_Field = Record<string, never>;\n`;
    }
    checks.push(`const options_${panel.id}: Json<DeepPartial<${alias}_Options>> = ${JSON.stringify(panel.options ?? {}, null, 1)};`);
    checks.push(`const custom_${panel.id}: Json<DeepPartial<${alias}_Field>> = ${JSON.stringify(panel.fieldConfig?.defaults?.custom ?? {}, null, 1)};`);
  }
  src += `export const dashboard: Json<Dashboard> = ${JSON.stringify(dashboard, null, 1)};\n`;
  src += checks.join('\n') + '\n';
  const out = path.join(work, file.replace(/\.json$/, '.ts'));
  fs.writeFileSync(out, src);
  sources.push(out);
}

const program = ts.createProgram(sources, {
  noEmit: true,
  strict: true,
  noUnusedLocals: false,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  target: ts.ScriptTarget.ES2022,
  skipLibCheck: true,
  typeRoots: [],
  baseUrl: here,
});
for (const d of ts.getPreEmitDiagnostics(program)) {
  const where = d.file
    ? `${path.basename(d.file.fileName).replace(/\.ts$/, '.json')} (generated line ${d.file.getLineAndCharacterOfPosition(d.start).line + 1})`
    : '';
  problems.push(`${where}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n  ')}`);
}
fs.rmSync(work, { recursive: true, force: true });
if (problems.length > 0) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log(`${files.length} dashboards match Grafana's schema (@grafana/schema)`);
