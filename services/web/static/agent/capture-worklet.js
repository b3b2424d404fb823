// AudioWorklet: copies microphone samples (mixed to mono) to the page, nothing else. Like an
// interrupt handler: no analysis here, so the audio thread never waits on the model.
const BLOCK_FRAMES = 2048; // about 43 ms at 48 kHz

class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Float32Array(BLOCK_FRAMES);
    this.filled = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (channels && channels.length) {
      const frames = channels[0].length;
      for (let i = 0; i < frames; i++) {
        let sum = 0;
        for (let c = 0; c < channels.length; c++) sum += channels[c][i];
        this.block[this.filled++] = sum / channels.length;
        if (this.filled === BLOCK_FRAMES) {
          this.port.postMessage(this.block, [this.block.buffer]);
          this.block = new Float32Array(BLOCK_FRAMES);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor('soundalert-capture', CaptureProcessor);
