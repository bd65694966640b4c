import { formatBytes, formatCount } from '../format.ts';
import type { Job, LakeFile } from '../types.ts';

const LAYERS = ['raw', 'validated', 'rejected', 'curated'];
/** The layers in the order data flows; the ones in one step are made together (validate splits raw in two). */
const STEPS = [['raw'], ['validated', 'rejected'], ['curated']];

/**
 * The run's lake files by layer, in the order data flows (raw → validated and rejected → curated → the
 * warehouse), each with the job that wrote it.
 */
export function LakeFiles({ files, jobs }: { files: LakeFile[]; jobs: Job[] }) {
  const layers = [...new Set([...LAYERS, ...files.map((f) => f.layer)])].filter((layer) =>
    files.some((f) => f.layer === layer),
  );
  const load = [...jobs].filter((j) => j.stage === 'load').sort((a, b) => b.id - a.id)[0];
  const targets = load?.params?.targets as Record<string, { table?: string }> | undefined;
  if (files.length === 0) return <p>No lake files yet.</p>;
  // Which stage and job wrote a layer's files.
  const writer = (layer: string) => {
    const jobs = [...new Set(files.filter((f) => f.layer === layer).map((f) => f.producedBy.jobId))];
    const stage = files.find((f) => f.layer === layer)?.producedBy.stage ?? '?';
    return `${stage}, job ${jobs.join(', ')}`;
  };
  return (
    <div class="lake-files" data-testid="lake-files">
      <ol class="lineage" aria-label="Lineage">
        {STEPS.map((step) => step.filter((layer) => layers.includes(layer)))
          .filter((step) => step.length > 0)
          .map((step) => (
            <li key={step.join('+')}>
              {step.map((layer, i) => (
                <span key={layer}>
                  {i > 0 ? ' + ' : ''}
                  <strong>{layer}</strong> <span class="muted small">({writer(layer)})</span>
                </span>
              ))}
            </li>
          ))}
        {load ? (
          <li>
            <strong>warehouse</strong>{' '}
            <span class="muted small">
              (load job {load.id}
              {targets
                ? `: ${Object.values(targets)
                    .map((t) => t.table)
                    .filter(Boolean)
                    .join(', ')}`
                : ''}
              )
            </span>
          </li>
        ) : null}
      </ol>
      {layers.map((layer) => {
        const group = files.filter((f) => f.layer === layer);
        return (
          <section key={layer} aria-labelledby={`layer-${layer}`}>
            <h3 id={`layer-${layer}`}>
              {layer}{' '}
              <span class="muted small">
                ({group.length} file{group.length === 1 ? '' : 's'})
              </span>
            </h3>
            <div class="scroll">
              <table class="cards">
                <thead>
                  <tr>
                    <th scope="col">File</th>
                    <th scope="col">Table</th>
                    <th scope="col" class="num">
                      Records
                    </th>
                    <th scope="col" class="num">
                      Size
                    </th>
                    <th scope="col">Written by</th>
                  </tr>
                </thead>
                <tbody>
                  {group.map((f) => (
                    <tr key={f.uri}>
                      <td data-label="File" class="wide">
                        <code class="wrap" title={f.sha256 ? `sha256 ${f.sha256}` : undefined}>
                          {f.uri}
                        </code>
                      </td>
                      <td data-label="Table">{f.table ?? '—'}</td>
                      <td class="num" data-label="Records">
                        {formatCount(f.records)}
                      </td>
                      <td class="num" data-label="Size">
                        {formatBytes(f.bytes)}
                      </td>
                      <td data-label="Written by">
                        {f.producedBy.stage} (job {f.producedBy.jobId})
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </section>
        );
      })}
    </div>
  );
}
