// Secrets never leave the harness: registered values and key material are masked wherever text
// goes out; ordinary text (fingerprints, GIDs, kernel addresses, digests) is left alone.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RealLab } from '../../harness/lab/real.ts';
import { CommandFailedError } from '../../harness/node/node.ts';
import { maskSecrets, redactText, registerSecret } from '../../harness/secrets.ts';
import { loadTopology } from '../../harness/topology/load.ts';

const KEY_LINES = [
  '-----BEGIN OPENSSH PRIVATE KEY-----',
  'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW',
  'QyNTUxOQAAACDXh2HcTnR2dTDGcSuYVE2bfk7eKgNRF1R5hNmtM8m8AAAAAJgcJ7ZDHCe2',
  '-----END OPENSSH PRIVATE KEY-----',
];

describe('secrets', () => {
  it('masks a key block, a key printed line by line (each line alone), and long base64 runs', () => {
    expect(redactText(KEY_LINES.join('\n'))).to.equal('[redacted private key]');
    for (const l of KEY_LINES) expect(redactText(`kernel: ${l}`), l).to.not.include(l.slice(5, 40));
    expect(redactText('token=ZXlKaGJHY2lPaUpJVXpJMU5pSXNJblI1Y0NJNklrcFhWQ0o5LmV5SnpkV0lpT2lJeE1qTTBOVFkzT0Rrd0lpd2libUZ0WlNJNklrcHZhRzRnUkc5bElpd2lhV0YwSWpveE5URTJNak01TURJeWZR')).to.equal('token=[redacted base64]');
  });

  it('leaves ordinary text alone: fingerprints, GIDs, digests, kernel addresses', () => {
    const ordinary = [
      'SHA256:fb1BLqeCbRdO8++A29PISc15UqioAnJlC/UyFvHP4vQ',
      'fe80:0000:0000:0000:5054:e7ff:fead:0001',
      'sha256 4f8e8a7e2f9c1b0d3e5a6c7b8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f80912',
      'RIP: 0010:cma_work_handler+0x2a/0x80 [rdma_cm] ffff888102a3b4c0',
    ];
    for (const t of ordinary) expect(redactText(t)).to.equal(t);
  });

  it('a registered secret is masked everywhere; a too-short one is refused (it could not be masked safely)', () => {
    registerSecret('pdu-Pa55word!');
    expect(maskSecrets('ipmitool -P pdu-Pa55word! power off')).to.equal('ipmitool -P [secret] power off');
    expect(() => registerSecret('abc')).to.throw(/at least 4/);
  });

  describe('a carrier command with a secret argument ({ env: NAME })', () => {
    let dir: string;
    before(() => (dir = mkdtempSync(join(tmpdir(), 'rf-secret-'))));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const topo = (down: string) => {
      const f = join(dir, 'lab.yaml');
      writeFileSync(
        f,
        `name: secret-lab\nkind: real\nnodes:\n  - name: pdu-host\n    access: { type: local }\n    bonds:\n      - name: rfb0\n        address: 10.99.0.1/24\n        slaves:\n          - name: rfs0\n            link: roce\n            carrier: { down: [${down}], up: ['true'] }\n`,
      );
      return loadTopology(f);
    };

    it('is taken from the environment and masked in the error of a command that echoes it', async () => {
      process.env.RF_TEST_PDU_PASSWORD = 'Sup3r-Secret-PDU';
      // A PDU CLI that fails and prints what it was given, as some do.
      const lab = new RealLab(topo(`sh, -c, 'echo "login refused for password $1" >&2; exit 1', pdu, { env: RF_TEST_PDU_PASSWORD }`));
      try {
        const err = await lab.carrier.cut('pdu-host', 'rfs0').catch((e: unknown) => e);
        expect(err).to.be.instanceOf(CommandFailedError);
        expect((err as Error).message).to.include('login refused for password [secret]');
        expect((err as Error).message).to.not.include('Sup3r-Secret-PDU');
      } finally {
        await lab.close();
        delete process.env.RF_TEST_PDU_PASSWORD;
      }
    });

    it('a missing variable is reported when the lab opens, naming it', () => {
      delete process.env.RF_TEST_MISSING_SECRET;
      expect(() => new RealLab(topo('ipmitool, -P, { env: RF_TEST_MISSING_SECRET }, power, off'))).to.throw(/needs the environment variable RF_TEST_MISSING_SECRET/);
    });

    it('doctor shows the command with the secret by name, never its value', () => {
      const f = topo(`sh, -c, 'echo "login refused for password $1" >&2; exit 1', pdu, { env: RF_TEST_PDU_PASSWORD2 }`).file;
      const r = spawnSync('bin/rdma-failover.js', ['doctor', '-t', f], { env: { ...process.env, RF_TEST_PDU_PASSWORD2: 'Another-Secret-99', NO_COLOR: '1' }, encoding: 'utf8' });
      expect(`${r.stdout}${r.stderr}`).to.include('$RF_TEST_PDU_PASSWORD2');
      expect(`${r.stdout}${r.stderr}`).to.not.include('Another-Secret-99');
    });

    it('a process that registered it prints it masked, on the console and in its log', () => {
      const script = `
        import { registerSecret, maskConsole } from './harness/secrets.ts';
        import { log } from './harness/log.ts';
        maskConsole();
        registerSecret(process.env.S);
        console.log('console: ' + process.env.S);
        process.stderr.write('stderr: ' + process.env.S + '\\n');
        log.warn({ argv: ['ipmitool', '-P', process.env.S] }, 'carrier command failed');`;
      const r = spawnSync('npx', ['tsx', '-e', script], { env: { ...process.env, S: 'Third-Secret-77' }, encoding: 'utf8' });
      const out = `${r.stdout}${r.stderr}`;
      expect(out, out).to.match(/console: \[secret\]/).and.to.match(/stderr: \[secret\]/).and.to.match(/carrier command failed argv=.*\[secret\]/);
      expect(out).to.not.include('Third-Secret-77');
    });
  });
});
