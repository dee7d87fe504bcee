/**
 * A fresh SoftHSM2 token for tests: its own token directory and config (SOFTHSM2_CONF, read by the module
 * when it is initialised, so set once per test process before any PKCS#11 call), initialised with
 * softhsm2-util, and admin sessions (pkcs11js) to make, disable and delete AES master keys the way an HSM
 * operator would.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

export interface SoftHsm {
  readonly module: string;
  readonly label: string;
  readonly pin: string;
  /** A new AES-256 master key object labelled `label`, version `version` (CKA_ID, u32be). */
  createKey(label: string, version?: number): void;
  /** Sets CKA_ENCRYPT and CKA_DECRYPT of every object labelled `label`. */
  setUsable(label: string, usable: boolean): void;
  /** Destroys every object labelled `label`. */
  destroyKey(label: string): void;
  /** Changes the user PIN and closes every session of the token (the proxy's login is gone: it must log in again). */
  changePin(from: string, to: string): void;
  /** Closes every session on the token (as a device reset would). */
  closeAllSessions(): void;
}

let conf: string | undefined;

/**
 * Creates and initialises a token labelled `label` in a temp dir. Once per test process: SoftHSM2 reads its token
 * directory when the module is initialised, so a token made later in the same process would not be seen.
 */
export function createSoftHsm(label = 'ssec-test', pin = `user-${process.pid}-pin`): SoftHsm {
  if (conf) throw new Error('createSoftHsm: one token per test process');
  const dir = mkdtempSync(join(tmpdir(), 'ssec-softhsm-'));
  mkdirSync(join(dir, 'tokens'));
  conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  process.env.SOFTHSM2_CONF = conf;
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', `so-${pin}`], {
    env: { ...process.env, SOFTHSM2_CONF: conf },
    stdio: 'ignore',
  });
  const p = new pkcs11js.PKCS11();
  p.load(SOFTHSM_MODULE);
  p.C_Initialize();
  const slot = p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label.trim() === label);
  if (!slot) throw new Error(`SoftHSM token ${label} not found`);
  let userPin = pin;
  /** Each admin operation in its own logged-in session, closed after: the proxy's own login is what remains. */
  const withSession = <T>(fn: (session: Buffer) => T): T => {
    const session = p.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    try {
      try {
        p.C_Login(session, pkcs11js.CKU_USER, userPin);
      } catch (e) {
        if ((e as pkcs11js.Pkcs11Error).code !== pkcs11js.CKR_USER_ALREADY_LOGGED_IN) throw e;
      }
      return fn(session);
    } finally {
      p.C_CloseSession(session);
    }
  };
  const find = (session: Buffer, label: string): Buffer[] => {
    p.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_LABEL, value: label }]);
    try {
      return p.C_FindObjects(session, 100);
    } finally {
      p.C_FindObjectsFinal(session);
    }
  };
  return {
    module: SOFTHSM_MODULE,
    label,
    pin,
    createKey(keyLabel, version = 1) {
      const id = Buffer.alloc(4);
      id.writeUInt32BE(version);
      withSession((session) => p.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
        { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
        { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_PRIVATE, value: true },
        { type: pkcs11js.CKA_SENSITIVE, value: true },
        { type: pkcs11js.CKA_EXTRACTABLE, value: false },
        { type: pkcs11js.CKA_ENCRYPT, value: true },
        { type: pkcs11js.CKA_DECRYPT, value: true },
        { type: pkcs11js.CKA_LABEL, value: keyLabel },
        { type: pkcs11js.CKA_ID, value: id },
      ]));
    },
    setUsable(keyLabel, usable) {
      withSession((session) => {
        for (const o of find(session, keyLabel)) {
          p.C_SetAttributeValue(session, o, [
            { type: pkcs11js.CKA_ENCRYPT, value: usable },
            { type: pkcs11js.CKA_DECRYPT, value: usable },
          ]);
        }
      });
    },
    destroyKey(keyLabel) {
      withSession((session) => {
        for (const o of find(session, keyLabel)) p.C_DestroyObject(session, o);
      });
    },
    changePin(from, to) {
      withSession((session) => p.C_SetPIN(session, from, to));
      userPin = to;
      p.C_CloseAllSessions(slot);
    },
    closeAllSessions() {
      p.C_CloseAllSessions(slot);
    },
  };
}
