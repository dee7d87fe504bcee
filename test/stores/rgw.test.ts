/** The store suite (./cases.ts) through the proxy over Ceph RGW 16. */
import { rgwUpstream } from '../support/proxy.ts';
import { storeSuite } from './cases.ts';

storeSuite({ name: 'RGW 16', kind: 'rgw', upstream: rgwUpstream });
