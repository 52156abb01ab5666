// Hand-built desired states for planner tests that do not go through the compose loader.
import { desiredNetwork, desiredService, desiredVolume } from '../../src/model/desired.js';
import type { DesiredState, NetworkSpec, ServiceSpec, VolumeSpec } from '../../src/model/model.js';

export function spec(name: string, over: Partial<ServiceSpec> = {}): ServiceSpec {
  return {
    name,
    image: 'docker.io/berth-test/app:1',
    command: ['sleep', '3600'],
    environment: {},
    ports: [],
    volumes: [],
    networks: ['default'],
    dependsOn: [],
    labels: {},
    restart: 'no',
    replicas: 1,
    ...over,
  };
}

export const net = (name: string, over: Partial<NetworkSpec> = {}): NetworkSpec => ({
  name,
  driver: 'bridge',
  internal: false,
  attachable: false,
  labels: {},
  external: false,
  ...over,
});

export const vol = (name: string, over: Partial<VolumeSpec> = {}): VolumeSpec => ({ name, driver: 'local', labels: {}, external: false, ...over });

export function state(services: ServiceSpec[], networks: NetworkSpec[] = [net('default')], volumes: VolumeSpec[] = [], project = 'shop', environment = 'staging'): DesiredState {
  return {
    project,
    environment,
    services: services.map(desiredService),
    networks: networks.map(desiredNetwork),
    volumes: volumes.map(desiredVolume),
  };
}
